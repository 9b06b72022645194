"""Typed settings loaded from a TOML file and ``SECONDNUM_...`` environment variables.

Each component declares its own frozen dataclass of settings (``appserver.settings.AsSettings``,
``charging.settings.OcsSettings`` ...). This module only knows how to fill such a dataclass from one TOML
table plus environment overrides, and how to say precisely which key is wrong.

Environment variables override the file: ``SECONDNUM_<SECTION>__<KEY>`` (double underscore between the
section and the key, e.g. ``SECONDNUM_AS__SIP_PORT=5070``). Lists are comma-separated. ``MONGO_URI`` is
honoured as the conventional spelling of ``SECONDNUM_MONGO__URI``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")

ENV_PREFIX = "SECONDNUM_"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"configuration error at '{key}': {problem}")
        self.key = key
        self.problem = problem


def read_toml(path: str | Path | None) -> dict[str, Any]:
    """Read a TOML file; ``None`` or an absent default path yields an empty mapping."""
    if path is None:
        return {}
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(str(p), "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), f"not valid TOML: {exc}") from exc


def env_overrides(section: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Collect ``SECONDNUM_<SECTION>__<KEY>`` variables for one section (keys lower-cased)."""
    env = os.environ if environ is None else environ
    prefix = f"{ENV_PREFIX}{section.upper()}__"
    found = {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)}
    if section == "mongo" and "MONGO_URI" in env and "uri" not in found:
        found["uri"] = env["MONGO_URI"]
    return found


def load_section(
    cls: type[T],
    document: Mapping[str, Any],
    section: str,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build settings dataclass ``cls`` from ``document[section]`` with environment overrides applied."""
    raw = document.get(section, {})
    if not isinstance(raw, Mapping):
        raise ConfigError(section, f"expected a table, got {type(raw).__name__}")
    merged: dict[str, Any] = dict(raw)
    merged.update(env_overrides(section, environ))
    return build(cls, merged, section)


def build(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """Instantiate dataclass ``cls`` from ``values``, converting and checking every field."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}.{key}", f"unknown setting (known: {known})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in values:
            kwargs[name] = _convert(values[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}.{name}", "required setting is missing")
    try:
        instance = cls(**kwargs)
    except ValueError as exc:  # __post_init__ validation
        raise ConfigError(where, str(exc)) from exc
    return typing.cast(T, instance)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value == "" and len(args) < len(get_args(hint))):
            return None
        errors = []
        for arg in args:
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(key, "; ".join(errors))
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (list, tuple):
        (item_hint, *_rest) = get_args(hint) or (str,)
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ConfigError(key, f"expected a list, got {type(value).__name__}")
        converted = [_convert(v, item_hint, f"{key}[{i}]") for i, v in enumerate(items)]
        return tuple(converted) if origin is tuple else converted
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(key, "expected a table")
        return build(hint, value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected an integer, got {value!r}") from None
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {type(value).__name__}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(key, f"expected a path, got {type(value).__name__}")
        return Path(value)
    raise ConfigError(key, f"unsupported setting type {hint!r}")
