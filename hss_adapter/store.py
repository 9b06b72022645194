"""Account and alias persistence: the only module that writes ``accounts`` and ``aliases``.

Functions are synchronous (pymongo) and are called through ``asyncio.to_thread`` by async callers. Input is
already schema-validated JSON (see :mod:`hss_adapter.api.schemas`); duplicates are reported from the unique
indexes, never from a racy read-then-write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import mongoengine as me
from bson import ObjectId

from hss_adapter.api.representation import settings_json
from hss_adapter.models import (
    AccountDoc,
    AliasDoc,
    FollowMeDoc,
    FollowMeTargetDoc,
    TimeWindowDoc,
    VoicemailDoc,
)
from hss_adapter.pin import hash_pin
from hss_adapter.profile import DAY_NAMES, AccountProfile, profile_from_documents
from secondnum.identity import IdentityError, canonical, normalise_e164, tel_uri

KEEP = object()
"""Sentinel for ``pin_hash``: keep the stored PIN."""


class StoreError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(StoreError):
    pass


class DuplicateError(StoreError):
    pass


class InvalidError(StoreError):
    pass


def normalise_target_uri(uri: str, field: str = "uri") -> str:
    """``tel:+E164`` for numbers in any spelling, ``sip:``/``sips:`` URIs kept as given."""
    text = uri.strip()
    if text.lower().startswith(("sip:", "sips:")):
        if any(c.isspace() for c in text):
            raise InvalidError(field, "a SIP URI cannot contain whitespace (RFC 3261 §25.1)")
        try:
            key = canonical(text)
        except IdentityError as exc:
            raise InvalidError(field, str(exc)) from None
        # A SIP URI that names a global number is stored as tel: so the AS routes it to the PSTN breakout.
        return tel_uri(key) if key[0].isdigit() else text
    try:
        return tel_uri(canonical(text))
    except IdentityError as exc:
        raise InvalidError(field, str(exc)) from None


def canonical_identity(identity: str, field: str = "identity") -> str:
    """The lookup key of an alias identity; control characters and inner whitespace are refused."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in identity.strip()):
        raise InvalidError(field, "identity contains whitespace or control characters")
    try:
        return canonical(identity)
    except IdentityError as exc:
        raise InvalidError(field, str(exc)) from None


def _follow_me(data: Mapping[str, Any]) -> FollowMeDoc:
    targets = [
        FollowMeTargetDoc(
            uri=normalise_target_uri(t["uri"], f"follow_me.targets[{i}].uri"),
            ring_timeout=t.get("ring_timeout", 20),
        )
        for i, t in enumerate(data.get("targets", []))
    ]
    window = data.get("time_window")
    if window and not window.get("days"):
        window = {**window, "days": list(DAY_NAMES)}  # absent = every day
    if window:
        try:
            ZoneInfo(window.get("timezone", "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidError("follow_me.time_window.timezone",
                               f"unknown time zone {window.get('timezone')!r} (use an IANA name)") from None
    return FollowMeDoc(
        targets=targets,
        ring_order=data.get("ring_order", "sequential"),
        time_window=TimeWindowDoc(**window) if window else None,
    )


def _voicemail(data: Mapping[str, Any], old_hash: str | None) -> VoicemailDoc:
    if "pin_hash" in data:  # internal callers only (Sh mirror); the REST schema has no such member
        pin_hash = data["pin_hash"]
    elif "pin" not in data:
        pin_hash = old_hash
    elif data["pin"] is None:
        pin_hash = None
    else:
        pin_hash = hash_pin(data["pin"])
    return VoicemailDoc(
        enabled=data.get("enabled", True),
        pin_hash=pin_hash,
        pin_required=data.get("pin_required", False),
        max_message_seconds=data.get("max_message_seconds", 120),
        max_messages=data.get("max_messages", 50),
        greeting=data.get("greeting"),
    )


def _apply_fields(account: AccountDoc, data: Mapping[str, Any]) -> None:
    """Set every editable field of ``account`` from full (PUT-form) input ``data``."""
    old_hash = account.voicemail.pin_hash if account.voicemail else None
    account.display_name = data.get("display_name", "")
    account.status = data.get("status", "active")
    account.answering_mode = data.get("answering_mode", "forward_then_voicemail")
    account.caller_id_presentation = data.get("caller_id_presentation", "did")
    account.follow_me = _follow_me(data.get("follow_me") or {})
    account.voicemail = _voicemail(data.get("voicemail") or {}, old_hash)
    account.updated_at = dt.datetime.now(dt.UTC)


def _save(account: AccountDoc) -> None:
    try:
        account.save()
    except me.NotUniqueError:
        raise DuplicateError("did", f"account {account.did} already exists") from None
    except me.ValidationError as exc:
        raise InvalidError(_validation_field(exc), str(exc)) from None


def _validation_field(exc: me.ValidationError) -> str:
    errors = exc.to_dict() if exc.errors else {}
    if not errors:
        return "body"
    path: list[str] = []
    node: Any = errors
    while isinstance(node, dict) and node:
        name = next(iter(node))
        path.append(str(name))
        node = node[name]
    return ".".join(path)


def _raw_account(did: str) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = AccountDoc._get_collection().find_one({"did": did})
    return doc


def _raw_aliases(account_id: ObjectId) -> list[dict[str, Any]]:
    return list(AliasDoc._get_collection().find({"account": account_id}))


def profile_of(did: str) -> AccountProfile | None:
    raw = _raw_account(did)
    if raw is None:
        return None
    return profile_from_documents(raw, _raw_aliases(raw["_id"]))


def require_profile(did: str) -> AccountProfile:
    profile = profile_of(did)
    if profile is None:
        raise NotFoundError("did", f"no account {did}")
    return profile


def create_account(data: Mapping[str, Any]) -> AccountProfile:
    """Create an account (and the aliases listed in ``data["aliases"]``); 409 semantics on duplicates."""
    did = normalise_e164(data["did"])
    aliases = [
        (a["identity"], canonical_identity(a["identity"], f"aliases[{i}].identity"),
         bool(a.get("allow_registration", False)))
        for i, a in enumerate(data.get("aliases", []))
    ]
    keys = [k for _, k, _ in aliases]
    if len(set(keys)) != len(keys):
        raise DuplicateError("aliases", "the same alias identity is listed twice")
    # Pre-checks give the natural error order and avoid a create-then-compensate flap in the change stream;
    # the unique indexes below still decide races.
    if _raw_account(did) is not None:
        raise DuplicateError("did", f"account {did} already exists")
    taken = AliasDoc._get_collection().find_one({"key": {"$in": keys}}) if keys else None
    if taken is not None:
        raise DuplicateError("aliases", f"alias {taken['identity']} belongs to another account")
    account = AccountDoc(did=did, id=ObjectId())
    _apply_fields(account, data)
    try:
        account.validate()
    except me.ValidationError as exc:
        raise InvalidError(_validation_field(exc), str(exc)) from None
    # Aliases first, the account last: readers that follow the change stream (the profile cache) see the
    # account only once it is complete, never a DID without its aliases.
    inserted: list[str] = []
    try:
        for identity, key, allow in aliases:
            _insert_alias(account, identity, key, allow)
            inserted.append(key)
        _save(account)
    except StoreError:
        # Compensate: an alias or the DID raced with another request; leave nothing half-created.
        if inserted:
            AliasDoc._get_collection().delete_many({"key": {"$in": inserted}, "account": account.id})
        raise
    return require_profile(did)


def replace_account(did: str, data: Mapping[str, Any]) -> AccountProfile:
    """Replace every editable field (PUT); the PIN is kept unless ``voicemail.pin`` is given."""
    account = AccountDoc.objects(did=did).first()
    if account is None:
        raise NotFoundError("did", f"no account {did}")
    _apply_fields(account, data)
    _save(account)
    return require_profile(did)


def delete_account(did: str) -> bool:
    account = AccountDoc.objects(did=did).first()
    if account is None:
        return False
    AliasDoc.objects(account=account.id).delete()
    account.delete()
    return True


def list_profiles(limit: int, offset: int, filters: Mapping[str, str],
                  after: str | None = None) -> tuple[list[AccountProfile], int]:
    """A page of accounts ordered by DID and the total matching ``filters`` (exact matches only).

    ``after`` is a keyset cursor (DIDs greater than it, on the unique index); ``offset`` skips within that.
    """
    query: dict[str, Any] = {k: v for k, v in filters.items() if k in {"status", "answering_mode"}}
    coll = AccountDoc._get_collection()
    total = coll.count_documents(query)
    if after is not None:
        query["did"] = {"$gt": after}
    raws = list(coll.find(query).sort("did", 1).skip(offset).limit(limit))
    ids = [r["_id"] for r in raws]
    by_account: dict[ObjectId, list[dict[str, Any]]] = {i: [] for i in ids}
    for alias in AliasDoc._get_collection().find({"account": {"$in": ids}}):
        by_account.setdefault(alias["account"], []).append(alias)
    return [profile_from_documents(r, by_account[r["_id"]]) for r in raws], total


def _insert_alias(account: AccountDoc, identity: str, key: str, allow: bool) -> None:
    try:
        AliasDoc(key=key, identity=identity.strip(), account=account, allow_registration=allow).save()
    except me.NotUniqueError:
        raise DuplicateError("identity", f"alias {identity} already belongs to an account") from None


def add_alias(did: str, identity: str, allow_registration: bool) -> AccountProfile:
    key = canonical_identity(identity)
    account = AccountDoc.objects(did=did).first()
    if account is None:
        raise NotFoundError("did", f"no account {did}")
    _insert_alias(account, identity, key, allow_registration)
    touch(account)
    return require_profile(did)


def remove_alias(did: str, identity: str) -> AccountProfile:
    key = canonical_identity(identity)
    account = AccountDoc.objects(did=did).first()
    if account is None:
        raise NotFoundError("did", f"no account {did}")
    deleted = AliasDoc.objects(key=key, account=account.id).delete()
    if not deleted:
        raise NotFoundError("identity", f"{identity} is not an alias of {did}")
    touch(account)
    return require_profile(did)


def touch(account: AccountDoc) -> None:
    AccountDoc.objects(id=account.id).update_one(set__updated_at=dt.datetime.now(dt.UTC))


def replace_aliases(did: str, aliases: list[tuple[str, bool]]) -> list[str]:
    """Make the account's aliases exactly ``aliases`` (identity, allow_registration): Sh mirror."""
    account = AccountDoc.objects(did=did).first()
    if account is None:
        raise NotFoundError("did", f"no account {did}")
    wanted = {canonical_identity(i): (i, allow) for i, allow in aliases}
    current = {a.key: a for a in AliasDoc.objects(account=account.id)}
    for key, alias in current.items():
        if key not in wanted:
            alias.delete()
        elif alias.allow_registration != wanted[key][1]:
            alias.allow_registration = wanted[key][1]
            alias.save()
    conflicts = []
    for key, (identity, allow) in wanted.items():
        if key not in current:
            try:
                _insert_alias(account, identity, key, allow)
            except DuplicateError:
                conflicts.append(identity)
    return conflicts


def sync_doc_of(did: str) -> dict[str, Any] | None:
    """The account in the Sh "sync form": editable settings with ``voicemail.pin_hash``, plus aliases."""
    profile = profile_of(did)
    if profile is None:
        return None
    doc = settings_json(profile)
    if profile.voicemail.pin_hash is not None:
        doc["voicemail"]["pin_hash"] = profile.voicemail.pin_hash
    doc["aliases"] = [{"identity": a.identity, "allow_registration": a.allow_registration}
                      for a in profile.aliases]
    return doc


def upsert_from_sync(did: str, doc: Mapping[str, Any]) -> list[str]:
    """Create or replace an account from a sync-form ``doc`` (HSS data); returns aliases that conflicted."""
    settings = {k: v for k, v in doc.items() if k != "aliases"}
    settings.setdefault("voicemail", {})
    settings["voicemail"] = {**settings["voicemail"], "pin_hash": settings["voicemail"].get("pin_hash")}
    if AccountDoc.objects(did=did).first() is None:
        with contextlib.suppress(DuplicateError):  # created concurrently: replace below
            create_account({**settings, "did": did})
    replace_account(did, settings)
    aliases = [(a["identity"], bool(a.get("allow_registration", False))) for a in doc.get("aliases", [])]
    return replace_aliases(did, aliases)


def adopt_voicemail_pin_hash(did: str, pin_hash: str) -> str:
    """Give the account ``pin_hash`` unless it already has a PIN (media's one-time legacy-PIN migration).

    One conditional update, so a PIN set through the provisioning API meanwhile is never overwritten.
    Returns ``adopted``, ``kept`` (the account has its own PIN, which wins) or ``no_account``. The hash may be
    media's old ``pbkdf2_sha256$...`` form: :func:`hss_adapter.pin.verify_pin` accepts it.
    """
    accounts = AccountDoc._get_collection()
    result = accounts.update_one(
        {"did": did, "voicemail.pin_hash": None},  # null or missing
        {"$set": {"voicemail.pin_hash": pin_hash, "updated_at": dt.datetime.now(dt.UTC)}},
    )
    if result.modified_count:
        return "adopted"
    return "kept" if accounts.find_one({"did": did}, {"_id": 1}) is not None else "no_account"
