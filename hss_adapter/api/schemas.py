"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of the provisioning API, and request validation.

The same dictionaries are published in the OpenAPI document (:mod:`hss_adapter.api.openapi`) and used to
validate request bodies, so the documented contract and the enforced one cannot drift apart.
A violation is answered 422 with an RFC 9457 problem whose ``field`` member names the offending field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from secondnum.http import ProblemError

E164 = r"^\+?[1-9][0-9]{6,14}$"
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
PIN = r"^[0-9]{4,12}$"
NO_CONTROLS = r"^[^\x00-\x20\x7f]+$"
"""No whitespace or control characters: an identity ends up in URIs and in the Location header."""
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""No control characters (spaces allowed: ``+420 737 231 23`` is a number with visual separators)."""
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_ENUMS = {
    "status": ["active", "suspended"],
    "answering_mode": ["forward_then_voicemail", "forward_only", "voicemail_only", "reject"],
    "ring_order": ["sequential", "simultaneous"],
    "caller_id_presentation": ["did", "original_caller"],
}


def _obj(properties: dict[str, Any], required: Iterable[str] = (), **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False, **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, dict[str, Any]] = {
    "TimeWindow": _obj({
        "days": {"type": "array", "items": {"enum": list(DAYS)}, "uniqueItems": True, "minItems": 1,
                 "default": list(DAYS), "description": "absent = every day"},
        "start": {"type": "string", "pattern": HHMM},
        "end": {"type": "string", "pattern": HHMM},
        "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z0-9_+\-/]+$",
                     "description": "IANA time zone, e.g. Europe/Prague"},
    }, required=["start", "end"]),
    "FollowMeTarget": _obj({
        "uri": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": PRINTABLE,
                "description": "tel:+E164, an E.164 number, or a sip:/sips: URI"},
        "ring_timeout": {"type": "integer", "minimum": 1, "maximum": 300, "default": 20},
    }, required=["uri"]),
    "FollowMe": _obj({
        "targets": {"type": "array", "items": _ref("FollowMeTarget"), "maxItems": 10},
        "ring_order": {"enum": _ENUMS["ring_order"], "default": "sequential"},
        "time_window": {"oneOf": [{"type": "null"}, _ref("TimeWindow")]},
    }),
    "VoicemailInput": _obj({
        "enabled": {"type": "boolean", "default": True},
        "pin": {"oneOf": [{"type": "null"}, {"type": "string", "pattern": PIN}],
                "description": "plain PIN, stored only as a salted scrypt hash; null clears; absent keeps"},
        "pin_required": {"type": "boolean", "default": False},
        "max_message_seconds": {"type": "integer", "minimum": 5, "maximum": 3600, "default": 120},
        "max_messages": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 50},
        "greeting": {"type": ["string", "null"], "maxLength": 256},
    }),
    "Voicemail": _obj({
        "enabled": {"type": "boolean"}, "pin_set": {"type": "boolean"}, "pin_required": {"type": "boolean"},
        "max_message_seconds": {"type": "integer"}, "max_messages": {"type": "integer"},
        "greeting": {"type": ["string", "null"]},
    }),
    "AliasInput": _obj({
        "identity": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_CONTROLS,
                     "description": "42073723123@pstn, tel:+42073723123, sip:+42073723123@h;user=phone"},
        "allow_registration": {"type": "boolean", "default": False},
    }, required=["identity"]),
    "Alias": _obj({
        "identity": {"type": "string"}, "key": {"type": "string"}, "allow_registration": {"type": "boolean"},
    }),
    "AccountSettings": _obj({
        "display_name": {"type": "string", "maxLength": 128},
        "status": {"enum": _ENUMS["status"], "default": "active"},
        "answering_mode": {"enum": _ENUMS["answering_mode"], "default": "forward_then_voicemail"},
        "follow_me": _ref("FollowMe"),
        "caller_id_presentation": {"enum": _ENUMS["caller_id_presentation"], "default": "did"},
        "voicemail": _ref("VoicemailInput"),
    }),
    "Account": _obj({
        "did": {"type": "string", "pattern": r"^[1-9][0-9]{6,14}$"},
        "display_name": {"type": "string"},
        "status": {"enum": _ENUMS["status"]},
        "answering_mode": {"enum": _ENUMS["answering_mode"]},
        "follow_me": _ref("FollowMe"),
        "caller_id_presentation": {"enum": _ENUMS["caller_id_presentation"]},
        "voicemail": _ref("Voicemail"),
        "aliases": {"type": "array", "items": _ref("Alias")},
    }),
    "AccountPage": _obj({
        "items": {"type": "array", "items": _ref("Account")},
        "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "next_after": {"type": ["string", "null"], "description": "cursor of the next page, null at the end"},
    }),
    "Problem": {"type": "object", "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "field": {"type": "string"},
    }},
}

# AccountCreate = AccountSettings + did (required) + aliases.
SCHEMAS["AccountCreate"] = _obj({
    **SCHEMAS["AccountSettings"]["properties"],
    "did": {"type": "string", "pattern": E164, "description": "E.164, with or without '+'"},
    "aliases": {"type": "array", "items": _ref("AliasInput"), "maxItems": 20},
}, required=["did"])


def _validator(name: str) -> Draft202012Validator:
    schema = {**SCHEMAS[name], "components": {"schemas": SCHEMAS}}
    return Draft202012Validator(schema)


_VALIDATORS = {name: _validator(name) for name in SCHEMAS}


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _field_of(error: ValidationError) -> str:
    base = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            return _path([*base, extra[0]])
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            return _path([*base, missing[0]])
    if error.validator == "oneOf" and error.context:
        # Report the most specific branch failure, e.g. the pattern of a non-null PIN.
        best = max(error.context, key=lambda e: len(list(e.absolute_path)))
        return _path([*base, *list(best.absolute_path)[len(base):]]) if best.absolute_path else _path(base)
    return _path(base) or "body"


def _message(error: ValidationError, field: str) -> str:
    if error.validator == "additionalProperties":
        return f"unknown field '{field}'"
    if error.validator == "required":
        return f"missing required field '{field}'"
    if error.validator == "pattern" and error.validator_value == E164:
        return f"'{field}' is not an E.164 number"
    return f"'{field}': {error.message}"


def validate(name: str, body: Any) -> dict[str, Any]:
    """Validate ``body`` against schema ``name``; raise a 422 problem naming the first offending field."""
    errors = sorted(_VALIDATORS[name].iter_errors(body),
                    key=lambda e: (list(map(str, e.absolute_path)), e.validator != "additionalProperties"))
    if errors:
        first = errors[0]
        field = _field_of(first)
        raise ProblemError(
            422, "Unprocessable Content", _message(first, field), field=field,
            errors=[{"field": _field_of(e), "message": e.message} for e in errors[:20]],
        )
    if not isinstance(body, dict):  # every request schema is an object
        raise ProblemError(422, "Unprocessable Content", "body must be a JSON object", field="body")
    return body
