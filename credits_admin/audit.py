"""The one helper every staff action that changes data calls, inside its transaction."""

import json

from django.core.serializers.json import DjangoJSONEncoder

from .models import AuditEvent


def _jsonable(value):
    return json.loads(json.dumps(value or {}, cls=DjangoJSONEncoder))


def record_change(*, actor, action: str, target=None, summary: str = "", before=None, after=None) -> AuditEvent:
    """Write one audit event. `target` is a model instance (or None); `before`/`after` are
    dicts of the fields that changed. Call it inside the same transaction as the change."""
    target_type = target_id = ""
    if target is not None:
        target_type = target._meta.label_lower
        target_id = str(target.pk)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEvent.objects.create(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary[:500],
        before=_jsonable(before),
        after=_jsonable(after),
    )
