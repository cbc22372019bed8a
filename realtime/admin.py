"""Django admin for sessions, messages, agents' memory and the audit log."""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from realtime import credentials, session_state
from realtime.models import AgentCredential, AuditEvent, MemoryEntry, Message, RevokedToken, Session

admin.site.site_header = "Shared Context administration"
admin.site.site_title = "Shared Context admin"
admin.site.index_title = "Sessions, messages, memory, agent keys and audit log"
admin.site.site_url = "/"


def short(text, length=80):
    return Truncator(str(text)).chars(length)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("id", "short_purpose", "created_by", "message_count", "is_active", "created_at", "updated_at",
                    "live")
    list_filter = ("is_active", "created_at", "updated_at")
    search_fields = ("id", "purpose", "created_by")
    readonly_fields = ("id", "created_at", "updated_at", "last_seq", "live", "message_list")
    fields = ("id", "purpose", "created_by", "is_active", "metadata", "last_seq", "created_at", "updated_at",
              "live", "message_list")
    date_hierarchy = "updated_at"
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and {"is_active", "purpose"} & set(form.changed_data):
            session_state.announce_on_commit(obj)  # open pages show it closed, reopened or renamed

    @admin.display(description="purpose", ordering="purpose")
    def short_purpose(self, obj):
        return short(obj.purpose)

    @admin.display(description="messages", ordering="last_seq")
    def message_count(self, obj):
        return obj.last_seq

    @admin.display(description="live page")
    def live(self, obj):
        return format_html('<a href="{}">watch</a>', reverse("realtime:session", args=[obj.id]))

    @admin.display(description="messages")
    def message_list(self, obj):
        url = reverse("admin:realtime_message_changelist") + f"?session__id__exact={obj.id}"
        return format_html('<a href="{}">{} message(s) in this session</a>', url, obj.last_seq)


class VisibilityFilter(admin.SimpleListFilter):
    title = "audience"
    parameter_name = "audience"

    def lookups(self, request, model_admin):
        return (("public", "Public"), ("restricted", "Not public"))

    def queryset(self, request, queryset):
        if self.value() == "public":
            return queryset.filter(visibility="public")
        if self.value() == "restricted":
            return queryset.exclude(visibility="public")
        return queryset


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("session_link", "seq", "sender", "sender_type", "visibility", "short_content", "parent_id",
                    "timestamp")
    list_display_links = ("seq",)
    list_filter = ("visibility", VisibilityFilter, "sender_type", "timestamp")
    search_fields = ("content", "sender", "=session__id")
    readonly_fields = ("session", "seq", "timestamp")
    raw_id_fields = ("parent",)
    list_select_related = ("session",)
    date_hierarchy = "timestamp"
    show_full_result_count = False
    ordering = ("-timestamp",)

    @admin.display(description="session", ordering="session_id")
    def session_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("realtime:session", args=[obj.session_id]), obj.session_id)

    @admin.display(description="content")
    def short_content(self, obj):
        return short(obj.content, 100)

    def has_add_permission(self, request):
        return False  # messages are numbered and broadcast by realtime.operations, not created here


class ScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return (("global", "Global"), ("session", "Per session"))

    def queryset(self, request, queryset):
        if self.value() == "global":
            return queryset.filter(session__isnull=True)
        if self.value() == "session":
            return queryset.filter(session__isnull=False)
        return queryset


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return (("live", "Not expired"), ("expired", "Expired"), ("never", "Never expires"))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "never":
            return queryset.filter(expires_at__isnull=True)
        return queryset


@admin.register(MemoryEntry)
class MemoryEntryAdmin(admin.ModelAdmin):
    list_display = ("agent_id", "key", "scope", "short_value", "expires_at", "expired", "updated_at")
    list_filter = (ScopeFilter, ExpiryFilter, "updated_at")
    search_fields = ("agent_id", "key", "=session__id")
    raw_id_fields = ("session",)
    readonly_fields = ("created_at", "updated_at")
    list_select_related = ("session",)

    @admin.display(description="scope", ordering="session_id")
    def scope(self, obj):
        return obj.session_id or "global"

    @admin.display(description="value")
    def short_value(self, obj):
        return short(json.dumps(obj.value, ensure_ascii=False, default=str), 80)

    @admin.display(description="expired", boolean=True)
    def expired(self, obj):
        return obj.expires_at is not None and obj.expires_at <= timezone.now()


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "event_type", "agent_id", "session_id", "short_detail")
    list_filter = ("event_type", "timestamp")
    search_fields = ("agent_id", "=session_id", "event_type")
    readonly_fields = ("timestamp", "event_type", "agent_id", "session_id", "detail")
    date_hierarchy = "timestamp"
    show_full_result_count = False

    @admin.display(description="detail")
    def short_detail(self, obj):
        return short(json.dumps(obj.detail, ensure_ascii=False, default=str), 100)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AgentCredentialForm(forms.ModelForm):
    agent_id = forms.RegexField(regex=credentials.AGENT_ID_PATTERN, max_length=100,
                                help_text="The one agent id this key may authenticate as.")
    agent_type = forms.RegexField(regex=credentials.AGENT_TYPE_PATTERN, max_length=50,
                                  help_text="The one agent type it may use, e.g. claude.")
    permissions = forms.MultipleChoiceField(
        choices=[(p, p) for p in credentials.PERMISSIONS], initial=["read", "write"],
        widget=forms.CheckboxSelectMultiple, help_text="The most a token issued under this key may hold.")

    class Meta:
        model = AgentCredential
        fields = ("agent_id", "agent_type", "permissions", "expires_at", "description")


@admin.register(AgentCredential)
class AgentCredentialAdmin(admin.ModelAdmin):
    """Issue a key (shown once, after saving), revoke keys; the key's hash is never shown."""

    list_display = ("key_id", "agent_id", "agent_type", "permission_list", "created_at", "expires_at",
                    "revoked_at", "last_used_at", "active")
    list_filter = ("agent_type", "revoked_at", "created_at")
    search_fields = ("=key_id", "agent_id", "description")
    actions = ["revoke_keys"]
    form = AgentCredentialForm
    readonly_fields = ("key_id", "agent_id", "agent_type", "permissions", "created_by", "created_at",
                       "revoked_at", "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:  # an issued key: only its description and expiry change
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return AgentCredentialForm.Meta.fields
        return ("key_id", "agent_id", "agent_type", "permissions", "description", "expires_at", "created_by",
                "created_at", "revoked_at", "last_used_at")

    @admin.display(description="permissions")
    def permission_list(self, obj):
        return ", ".join(obj.permissions)

    @admin.display(description="active", boolean=True)
    def active(self, obj):
        return obj.revoked_at is None and (obj.expires_at is None or obj.expires_at > timezone.now())

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        obj.key_id, key = credentials.new_key()
        obj.key_hash = credentials.hash_key(key)
        obj.permissions = [p for p in credentials.PERMISSIONS if p in form.cleaned_data["permissions"]]
        obj.created_by = request.user.get_username()[:150]
        super().save_model(request, obj, form, change)
        messages.warning(request, f"The key for {obj.agent_id} is {key} - copy it now: it is stored hashed and "
                                  "cannot be shown again. The client sends it as the X-API-Key header.")

    @admin.action(description="Revoke the selected keys (their tokens are refused from their next call)")
    def revoke_keys(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")


@admin.register(RevokedToken)
class RevokedTokenAdmin(admin.ModelAdmin):
    list_display = ("jti", "agent_id", "reason", "revoked_at", "expires_at")
    list_filter = ("reason", "revoked_at")
    search_fields = ("=jti", "agent_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
