"""``POST /broadcast/``: several targets' events in one request, from the door to the publisher that sends them."""

import asyncio
import json

import pytest
from channels.layers import get_channel_layer
from channels.testing import HttpCommunicator
from django.test import AsyncClient

from project.asgi import application
from realtime import publisher
from realtime.broadcast_client import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    REJECTED,
    RETRY,
    SENT,
    BroadcastClient,
    Result,
    batch_bodies,
)
from realtime.envelope import MEMORY_TARGET
from realtime.live.groups import WAKE_GROUP, session_group
from realtime.live.memory import MEMORY_GROUP
from realtime.models import Session
from realtime.strategies import ChannelLayerStrategy, Strategy
from tests.scripted_door import DROP, scripted_door
from tests.test_broadcast_view import SECRET, assert_json_error, broadcast_settings, event  # noqa: F401 (autouse)

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("fresh_channel_layer")]

UNKNOWN = "session_00000000deadbeef"


async def post(body, secret=SECRET, raw=False):
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    return await AsyncClient().post("/broadcast/", body if raw else json.dumps(body),
                                    content_type="application/json", headers=headers)


def batches(*pairs):
    return {"batches": [{"target": target, "events": events} for target, events in pairs]}


class Listener:
    """Channels in some groups: what their consumers would receive."""

    def __init__(self):
        self.layer = get_channel_layer()
        self.channels = {}

    async def join(self, *groups):
        for group in groups:
            self.channels[group] = await self.layer.new_channel()
            await self.layer.group_add(group, self.channels[group])
        return self

    async def next(self, group):
        return await asyncio.wait_for(self.layer.receive(self.channels[group]), 5)

    async def nothing(self, group):
        try:
            await asyncio.wait_for(self.layer.receive(self.channels[group]), 0.2)
        except TimeoutError:
            return True
        return False


@pytest.fixture
async def sessions():
    return [(await Session.objects.acreate(purpose=f"many {n}", created_by="tester")).id for n in range(2)]


@pytest.fixture
async def listener(sessions):
    return await Listener().join(WAKE_GROUP, *(session_group(s) for s in sessions))


async def test_each_sessions_events_reach_its_group_and_the_wake_group_hears_them_once(sessions, listener):
    first, second = sessions
    response = await post(batches((first, [event(first, 2), event(first, 1)]), (second, [event(second, 7)])))
    assert response.status_code == 202
    assert response.json() == {"success": True, "accepted": 3, "refused": []}
    assert [e["seq"] for e in (await listener.next(session_group(first)))["events"]] == [1, 2]
    assert [e["seq"] for e in (await listener.next(session_group(second)))["events"]] == [7]
    woken = await listener.next(WAKE_GROUP)
    assert [(e["session_id"], e["seq"]) for e in woken["events"]] == [(first, 1), (first, 2), (second, 7)]
    assert await listener.nothing(WAKE_GROUP)


async def test_a_session_that_does_not_exist_is_refused_alone(sessions, listener):
    first, _ = sessions
    response = await post(batches((UNKNOWN, [event(UNKNOWN, 1)]), (first, [event(first, 1)])))
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["refused"] == [{"target": UNKNOWN, "code": "SESSION_NOT_FOUND", "error": f"no session {UNKNOWN}"}]
    assert [e["seq"] for e in (await listener.next(session_group(first)))["events"]] == [1]


async def test_memory_events_ride_along(sessions, listener):
    staff = await Listener().join(MEMORY_GROUP)
    entry = {"id": 1, "agent_id": "ada", "key": "k", "session_id": None, "value": 1, "metadata": {},
             "updated_at": "2026-05-01T14:00:00.000000Z", "expires_at": None}
    first, _ = sessions
    response = await post(batches((MEMORY_TARGET, [{"type": "memory", "action": "set", "entry": entry}]),
                                  (first, [event(first, 1)])))
    assert response.status_code == 202 and response.json()["accepted"] == 2
    assert (await staff.next(MEMORY_GROUP))["actions"] == ["set"]
    assert [e["seq"] for e in (await listener.next(session_group(first)))["events"]] == [1]


BAD = {
    "not an object": lambda s: [s],
    "no batches": lambda s: {"events": [event(s, 1)]},
    "batches empty": lambda s: {"batches": []},
    "batches not a list": lambda s: {"batches": {s: [event(s, 1)]}},
    "another field": lambda s: {**batches((s, [event(s, 1)])), "x": 1},
    "batch not an object": lambda s: {"batches": [[s, [event(s, 1)]]]},
    "batch without target": lambda s: {"batches": [{"events": [event(s, 1)]}]},
    "batch with another field": lambda s: {"batches": [{"target": s, "events": [event(s, 1)], "x": 1}]},
    "target not a string": lambda s: {"batches": [{"target": 1, "events": [event(s, 1)]}]},
    "events empty": lambda s: batches((s, [])),
    "event of another session": lambda s: batches((s, [event(UNKNOWN, 1)])),
    "a bad event in a later batch": lambda s: batches((s, [event(s, 1)]), (s, [event(s, -1)])),
}


@pytest.mark.parametrize("shape", list(BAD))
async def test_a_bad_body_is_400_and_delivers_nothing(sessions, listener, shape):
    assert_json_error(await post(BAD[shape](sessions[0])), 400, "BAD_EVENT")
    assert await listener.nothing(session_group(sessions[0]))


async def test_a_bad_target_is_400_and_delivers_nothing(sessions, listener):
    first, _ = sessions
    assert_json_error(await post(batches((first, [event(first, 1)]), ("nope", [event("nope", 1)]))), 400,
                      "INVALID_SESSION_ID")
    assert await listener.nothing(session_group(first))


async def test_too_many_events_in_all_is_413(sessions, listener):
    first, second = sessions
    half = MAX_EVENTS // 2 + 1
    body = batches((first, [event(first, n, content="") for n in range(1, half + 1)]),
                   (second, [event(second, n, content="") for n in range(1, half + 1)]))
    assert_json_error(await post(body), 413, "TOO_LARGE")
    assert await listener.nothing(session_group(first))


async def test_the_secret_is_required(sessions, listener):
    first, _ = sessions
    assert_json_error(await post(batches((first, [event(first, 1)])), secret=None), 401, "AUTH_REQUIRED")
    assert_json_error(await post(batches((first, [event(first, 1)])), secret="wrong"), 403, "FORBIDDEN")
    assert_json_error(await post(b"{not json", raw=True), 400, "BAD_JSON")
    assert await listener.nothing(session_group(first))


async def test_daphnes_consumer_serves_the_same_door(sessions, listener):
    first, second = sessions
    body = json.dumps(batches((first, [event(first, 1)]), (UNKNOWN, [event(UNKNOWN, 1)]))).encode()
    communicator = HttpCommunicator(application, "POST", "/broadcast/", body=body,
                                    headers=[(b"authorization", f"Bearer {SECRET}".encode())])
    communicator.scope["client"] = ["127.0.0.1", 50000]
    response = await communicator.get_response()
    answer = json.loads(response["body"])
    assert response["status"] == 202 and answer["accepted"] == 1 and answer["refused"][0]["target"] == UNKNOWN
    assert [e["seq"] for e in (await listener.next(session_group(first)))["events"]] == [1]


# The client


async def test_bodies_keep_each_targets_order_within_both_bounds():
    big = "z" * 300_000
    pairs = [("session_00000000000000a1", [event("session_00000000000000a1", n, content=big) for n in range(1, 8)]),
             ("session_00000000000000b2", [event("session_00000000000000b2", n, content="") for n in range(1, 1500)])]
    requests = batch_bodies(pairs)
    assert len(requests) > 2
    seen = {}
    for body, targets in requests:
        parsed = json.loads(body)
        assert len(body) <= MAX_BODY_BYTES and sum(len(b["events"]) for b in parsed["batches"]) <= MAX_EVENTS
        assert targets == [b["target"] for b in parsed["batches"]]
        for batch in parsed["batches"]:
            seen.setdefault(batch["target"], []).extend(e["seq"] for e in batch["events"])
    assert seen == {"session_00000000000000a1": list(range(1, 8)), "session_00000000000000b2": list(range(1, 1500))}


async def test_one_event_larger_than_the_bound_still_goes_alone():
    pairs = [("session_00000000000000a1", [event("session_00000000000000a1", 1, content="z" * (MAX_BODY_BYTES + 1))])]
    assert [targets for _, targets in batch_bodies(pairs)] == [["session_00000000000000a1"]]


async def test_the_client_answers_per_target():
    answer = (202, {"success": True, "accepted": 1, "refused": [
        {"target": UNKNOWN, "code": "SESSION_NOT_FOUND", "error": f"no session {UNKNOWN}"}]})
    async with scripted_door(answer) as (url, seen):
        client = BroadcastClient(url, "s")
        results = await client.send_many([("session_00000000000000a1", [event("session_00000000000000a1", 1)]),
                                          (UNKNOWN, [event(UNKNOWN, 1)])])
        await client.aclose()
    assert [path for path, _ in seen] == ["/broadcast/"]
    assert [r.outcome for r in results] == [SENT, REJECTED]
    assert "SESSION_NOT_FOUND" in results[1].error and "DATABASE_URL" in results[1].hint


async def test_a_failed_request_fails_its_targets_and_every_later_one():
    content = "z" * (MAX_BODY_BYTES // 2)  # two events per target: each target takes a request or two
    pairs = [("session_00000000000000a0", [event("session_00000000000000a0", 1, content="small")])]
    pairs += [(f"session_00000000000000a{n}", [event(f"session_00000000000000a{n}", s, content=content)
                                               for s in (1, 2)]) for n in (1, 2)]
    async with scripted_door(202, DROP) as (url, seen):
        client = BroadcastClient(url, "s")
        results = await client.send_many(pairs)
        await client.aclose()
    assert len(seen) == 2  # nothing after the failure was tried
    first_request = {batch["target"] for batch in seen[0][1]["batches"]}
    split = {batch["target"] for batch in seen[1][1]["batches"]} & first_request
    for (target, _), result in zip(pairs, results, strict=True):
        expected = SENT if target in first_request and target not in split else RETRY
        assert result.outcome == expected, (target, result)
    assert results[0].outcome == SENT  # delivered whole by the first request
    assert results[-1].outcome == RETRY and "posting to" in results[-1].error and "Daphne running" in results[-1].hint


async def test_a_daphne_without_the_door_gets_each_session_on_its_own_from_then_on():
    """A Daphne older than ``POST /broadcast/`` answers it 404: the same events go through the one-session door,
    and later batches go there directly, so the publisher may be upgraded before Daphne."""
    a, b = "session_00000000000000a1", "session_00000000000000a2"
    async with scripted_door(404, 202, 202, 202) as (url, seen):
        client = BroadcastClient(url, "s")
        first = await client.send_many([(a, [event(a, 1), event(a, 2)]), (b, [event(b, 1)])])
        second = await client.send_many([(a, [event(a, 3)])])
        await client.aclose()
    assert [r.outcome for r in first + second] == [SENT, SENT, SENT]
    assert [path for path, _ in seen] == ["/broadcast/", f"/broadcast/{a}", f"/broadcast/{b}", f"/broadcast/{a}"]
    assert [e["seq"] for e in seen[1][1]["events"]] == [1, 2] and seen[2][1]["seq"] == 1


async def test_a_batch_split_over_requests_goes_whole_through_the_one_session_door():
    content = "z" * (MAX_BODY_BYTES // 2)  # two events per target: a target's batch takes a request or two
    pairs = [(f"session_00000000000000a{n}", [event(f"session_00000000000000a{n}", s, content=content)
                                              for s in (1, 2)]) for n in (1, 2)]
    async with scripted_door(202, 404, 202) as (url, seen):
        client = BroadcastClient(url, "s")
        results = await client.send_many(pairs)
        await client.aclose()
    assert [r.outcome for r in results] == [SENT, SENT]
    first, second = (pair[0] for pair in pairs)
    # a1's two events went as two requests; the first was taken, the second met the older Daphne.
    assert [[(b["target"], [e["seq"] for e in b["events"]]) for b in body["batches"]] for _, body in seen[:2]] == [
        [(first, [1])], [(first, [2])]]
    resent = {}
    for path, body in seen[2:]:
        resent.setdefault(path.rsplit("/", 1)[1], []).extend(e["seq"] for e in body.get("events", [body]))
    assert resent == {first: [1, 2], second: [1, 2]}


async def test_a_daphne_that_went_away_gets_the_several_target_door_tried_again():
    """It may come back upgraded: after a failure to reach it, the client asks its ``POST /broadcast/`` again."""
    a = "session_00000000000000a1"
    async with scripted_door(404, 202, DROP, 202) as (url, seen):
        client = BroadcastClient(url, "s")
        outcomes = [(await client.send_many([(a, [event(a, seq)])]))[0].outcome for seq in (1, 2, 3)]
        await client.aclose()
    assert outcomes == [SENT, RETRY, SENT]
    assert [path for path, _ in seen] == ["/broadcast/", f"/broadcast/{a}", f"/broadcast/{a}", "/broadcast/"]


async def test_a_redirect_is_not_followed():
    a = "session_00000000000000a1"
    async with scripted_door((307, {}, {"Location": "/elsewhere/"})) as (url, seen):
        client = BroadcastClient(url, "s")
        (result,) = await client.send_many([(a, [event(a, 1)])])
        await client.aclose()
    assert result.outcome == REJECTED and "HTTP 307" in result.error
    assert [path for path, _ in seen] == ["/broadcast/"]


async def test_on_the_one_session_door_a_refusal_or_a_failure_still_counts():
    a, b, c = "session_00000000000000a1", "session_00000000000000a2", "session_00000000000000a3"
    not_found = (404, {"success": False, "code": "SESSION_NOT_FOUND", "error": f"no session {a}"})
    async with scripted_door(404, not_found, 503) as (url, seen):
        client = BroadcastClient(url, "s")
        results = await client.send_many([(a, [event(a, 1)]), (b, [event(b, 1)]), (c, [event(c, 1)])])
        await client.aclose()
    assert [r.outcome for r in results] == [REJECTED, RETRY, RETRY]
    assert "DATABASE_URL" in results[0].hint
    assert len(seen) == 3  # c waits with b: Daphne said it is overloaded


# The publisher and the strategies


class Answering(Strategy):
    """Answers each target with what ``outcomes`` says (SENT by default) and records every attempt."""

    via = target = "test"

    def __init__(self, outcomes):
        self.outcomes = outcomes  # target -> [outcome of each attempt]
        self.attempts = []

    async def send_many(self, batches):
        self.attempts.append([target for target, _ in batches])
        return [Result(self.outcomes.get(target, [SENT]).pop(0) if self.outcomes.get(target) else SENT, "x")
                for target, _ in batches]

    def send_sync(self, session_id, events):
        return Result(SENT)


async def test_the_publisher_sends_every_waiting_session_at_once_and_retries_only_what_failed():
    a, b, c = "session_00000000000000a1", "session_00000000000000b2", "session_00000000000000c3"
    strategy = Answering({b: [RETRY, SENT], c: [REJECTED]})
    marks = []
    sender = publisher.Publisher(strategy, mark=marks.append, sweep=None, backoff_start=0.01)
    for target in (a, b, c):
        sender.queue.append({"type": "new_message", "session_id": target, "seq": 1, "data": {}})
    sender.begin()
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while sender.counters["sent"] < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await sender.stop()
    assert strategy.attempts == [[a, b, c], [b]]
    assert sender.counters["sent"] == 2 and sender.counters["rejected"] == 1 and sender.counters["retried"] == 1
    assert sender.counters["failed_attempts"] == 1
    assert {k: v for m in marks for k, v in m.items()} == {a: 1, b: 1}


async def test_the_default_send_many_stops_trying_after_a_failure():
    class OneAtATime(Strategy):
        def __init__(self):
            self.tried = []

        async def send(self, target, events):
            self.tried.append(target)
            return Result(RETRY if target == "b" else SENT)

    strategy = OneAtATime()
    results = await strategy.send_many([("a", []), ("b", []), ("c", [])])
    assert strategy.tried == ["a", "b"] and [r.outcome for r in results] == [SENT, RETRY, RETRY]


async def test_the_channel_layer_strategy_refuses_a_missing_session_alone(sessions, listener):
    first, _ = sessions
    results = await ChannelLayerStrategy().send_many([(UNKNOWN, [event(UNKNOWN, 1)]), (first, [event(first, 1)])])
    assert [r.outcome for r in results] == [REJECTED, SENT]
    assert [e["seq"] for e in (await listener.next(session_group(first)))["events"]] == [1]
    assert [e["session_id"] for e in (await listener.next(WAKE_GROUP))["events"]] == [first]


# The same guards as the one-session door


@pytest.mark.parametrize(
    "header", [{"X-Forwarded-For": "203.0.113.9"}, {"X-Real-IP": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}]
)
async def test_a_request_relayed_by_a_proxy_is_refused(sessions, listener, header):
    first, _ = sessions
    response = await AsyncClient().post("/broadcast/", json.dumps(batches((first, [event(first, 1)]))),
                                        content_type="application/json",
                                        headers={"Authorization": f"Bearer {SECRET}", **header})
    assert_json_error(response, 403, "PROXIED")
    assert await listener.nothing(session_group(first))


async def test_an_address_outside_the_allow_list_is_refused(sessions, listener):
    first, _ = sessions
    communicator = HttpCommunicator(application, "POST", "/broadcast/",
                                    body=json.dumps(batches((first, [event(first, 1)]))).encode(),
                                    headers=[(b"authorization", f"Bearer {SECRET}".encode())])
    communicator.scope["client"] = ["203.0.113.9", 50000]
    response = await communicator.get_response()
    assert (response["status"], json.loads(response["body"])["code"]) == (403, "FORBIDDEN_CLIENT")
    assert await listener.nothing(session_group(first))


async def test_a_server_without_a_secret_refuses_everyone(sessions, listener, settings):
    first, _ = sessions
    settings.SCS_BROADCAST_SECRET = ""
    assert_json_error(await post(batches((first, [event(first, 1)])), secret="anything"), 403, "FORBIDDEN")
    assert await listener.nothing(session_group(first))


@pytest.mark.parametrize("limit", ["SCS_BROADCAST_MAX_BODY", "DATA_UPLOAD_MAX_MEMORY_SIZE"])
async def test_a_body_over_a_limit_is_413(sessions, listener, settings, limit):
    first, _ = sessions
    setattr(settings, limit, 2_000)
    assert_json_error(await post(batches((first, [event(first, 1, content="x" * 3_000)]))), 413, "TOO_LARGE")
    assert await listener.nothing(session_group(first))


async def test_get_is_405_and_post_needs_no_csrf_token(sessions):
    first, _ = sessions
    headers = {"Authorization": f"Bearer {SECRET}"}
    assert (await AsyncClient().get("/broadcast/", headers=headers)).status_code == 405
    response = await AsyncClient(enforce_csrf_checks=True).post(
        "/broadcast/", json.dumps(batches((first, [event(first, 1)]))), content_type="application/json",
        headers=headers)
    assert response.status_code == 202


@pytest.mark.parametrize("body", [
    b"1", b"true", b'"x"', b"{}", b'{"batches": null}', b'{"batches": [null]}', b'{"batches": [[]]}',
    b'{"batches": [{"target": "session_0123456789abcdef", "events": null}]}',
    b'{"batches": [{"target": "session_0123456789abcdef", "events": [null]}]}',
    b'{"batches": [{"target": {"$gt": ""}, "events": []}]}', b"\x00", b"{\"a\": \"\\ud800\"}", b"1e999999",
    b"[" * 50_000 + b"]" * 50_000,
])
async def test_odd_bodies_never_give_a_500(sessions, listener, body):
    response = await post(body, raw=True)
    assert response.status_code in (400, 413), response.content
    assert response.json()["success"] is False
    assert await listener.nothing(session_group(sessions[0]))


async def test_a_strategy_must_implement_one_of_its_sends():
    with pytest.raises(TypeError, match="send or send_many"):
        type("Neither", (Strategy,), {"send_sync": lambda self, session_id, events: None})
