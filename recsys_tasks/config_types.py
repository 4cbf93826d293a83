"""Building blocks of the configuration tree: field types, the frozen section base, and errors
that name the dotted key (``train.epochs``) and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

EventType = Literal["view", "click", "add_to_cart", "purchase", "search", "rate"]
#: The canonical event types of the warehouse contract, in the order of their embedding ids (0 = padding).
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

Segment = Literal["all", "new_users", "short_history", "long_history", "new_items"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_IDENTIFIER_RULE = (
    "not a plain SQL identifier (letters, digits, underscore; must not start with a digit; "
    "at most 63 characters). Use a view to expose other names."
)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what to change."""


def check_identifier(value: str, *, key: str) -> str:
    """Return ``value`` if it is a plain SQL identifier, else raise ``ConfigError`` naming ``key``."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(f"{key}={value!r}: {_IDENTIFIER_RULE}")
    return value


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(_IDENTIFIER_RULE)
    return value


def _split_commas(value: Any) -> Any:
    # Env variables and trigger params carry lists as "a,b"; a YAML/JSON list passes through.
    return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


# The value types of the tree; their constraints are part of pydantic's error message.
Identifier = Annotated[str, AfterValidator(_identifier)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
EventTypes = Annotated[tuple[EventType, ...], BeforeValidator(_split_commas)]
Names = Annotated[tuple[str, ...], BeforeValidator(_split_commas)]


class _Section(BaseModel):
    """A frozen config section: keyword construction validates like a file does."""

    # defer_build: the DAG files import this module (through settings) at parse time without
    # building a config, so pydantic builds the validators on first use instead.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    #: The dotted prefix of this section's keys in the tree ("" for the root).
    _section: ClassVar[str]

    def __init__(self, **data: Any) -> None:
        with _config_errors(type(self)):
            super().__init__(**data)


#: The canonical fields of the warehouse contract; the column mappings rename any of them.
_EVENT_FIELDS = ("event_id", "user_id", "item_id", "event_type", "event_ts", "value", "query", "session_id")
_ITEM_FIELDS = ("item_id", "title", "category", "created_at")


def _identity(names: tuple[str, ...]) -> dict[str, str]:
    return {name: name for name in names}


@contextmanager
def _config_errors(root: type[_Section]) -> Iterator[None]:
    """Turn pydantic's ``ValidationError`` into one ``ConfigError`` that names each dotted key."""
    try:
        yield
    except ValidationError as exc:
        raise ConfigError("; ".join(_explain(root, err) for err in exc.errors())) from None


#: pydantic's error types for a value of the wrong type, and the type named in our message.
_NOT_A = {
    "int_type": "int", "int_parsing": "int", "int_from_float": "int",
    "float_type": "float", "float_parsing": "float",
    "bool_type": "boolean", "bool_parsing": "boolean",
}


def _explain(section: type[_Section], err: Any) -> str:
    # pydantic calls each section's own __init__ (a custom one) when it validates the tree, so an
    # error's location is relative to ``section``; a nested section's error arrives as its ConfigError.
    key = section._section
    for part in err["loc"]:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    kind, value = err["type"], err.get("input")
    original = (err.get("ctx") or {}).get("error")
    if isinstance(original, ConfigError):  # already names its keys
        return str(original)
    if kind == "extra_forbidden":
        known = sorted(section.model_fields)
        return f"unknown config key {key}; known keys in this section: {known} (see docs/configuration.md)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key} must be a mapping, not {value!r}"
    if value is None and kind.endswith("_type"):
        return f"{key} must not be null"
    if kind in _NOT_A:
        return f"{key}={value!r} is not a {_NOT_A[kind]}"
    reason = str(original) if original is not None else err["msg"][0].lower() + err["msg"][1:]
    field = section.model_fields.get(err["loc"][0]) if err["loc"] else None
    hint = f" ({field.description})" if field is not None and field.description else ""
    return f"{key}={value!r}: {reason}{hint}"
