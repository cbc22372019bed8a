from django.contrib import admin

from realtime.models import AuditEvent, MemoryEntry, Message, Session


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("seq", "sender", "sender_type", "visibility", "content", "timestamp")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    ordering = ("-seq",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "purpose", "created_by", "last_seq", "is_active", "updated_at")
    list_filter = ("is_active", "created_at")
    search_fields = ("id", "purpose", "created_by")
    readonly_fields = ("id", "created_at", "updated_at", "last_seq")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("session", "seq", "sender", "sender_type", "visibility", "timestamp")
    list_filter = ("visibility", "sender_type", "timestamp")
    search_fields = ("content", "sender", "session__id")
    readonly_fields = ("session", "seq", "timestamp")
    raw_id_fields = ("parent",)
    list_select_related = ("session",)


@admin.register(MemoryEntry)
class MemoryEntryAdmin(admin.ModelAdmin):
    list_display = ("agent_id", "key", "session", "expires_at", "updated_at")
    list_filter = ("expires_at",)
    search_fields = ("agent_id", "key")
    raw_id_fields = ("session",)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "event_type", "agent_id", "session_id")
    list_filter = ("event_type",)
    search_fields = ("agent_id", "session_id")
    readonly_fields = ("timestamp", "event_type", "agent_id", "session_id", "detail")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
