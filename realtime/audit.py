"""Recording who did what: authentications, session creation, admin writes, refusals."""


from realtime.models import AuditEvent


def record(event_type, agent_id="", session_id="", **detail):
    AuditEvent.objects.create(event_type=event_type, agent_id=agent_id, session_id=session_id or "", detail=detail)
