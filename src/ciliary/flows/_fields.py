"""Typed read-only fields over a protojson object, declared as class attributes.

`source = str_field("source")` in a class whose instances keep their JSON object in the slot
`_d` reads `self._d["source"]` with protobuf getter semantics: an absent or mistyped scalar is
its zero value, an absent enum is its 0 name, an absent message is None, a list keeps only its
items of the right type. A field does not copy or convert the object.

At runtime a field is a plain `property` whose getter is a closure over its key: property's
`__get__` is in C, so this is faster than a hand-written property calling a reader function,
and much faster than a Python `__get__`. To mypy a field is a `Field[T]`: read-only, `T` on
an instance.

Contracts: a getter never writes and never raises, whatever JSON value it meets; list and
message fields build a new list or view on each access.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, Protocol, TypeVar, cast, overload

from ciliary.flows.enums import enum_name

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")
M = TypeVar("M")

JSON = dict[str, Any]


class Field(Protocol[T_co]):
    """What mypy sees of a field (never instantiated: fields are properties)."""

    @overload
    def __get__(self, obj: None, owner: type[Any], /) -> Field[T_co]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None, /) -> T_co: ...


def _field(get: Callable[[Any], T], doc: str | None) -> Field[T]:
    return cast("Field[T]", property(get, doc=doc))


def as_int(v: Any) -> int:
    """A protojson integer (a number, or a decimal string for 64-bit ints) as int, else 0."""
    if v is None or isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return 0
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return 0


# Each getter reads `m._d` inline: one call per attribute access, no reader function.


def str_field(key: str, doc: str | None = None) -> Field[str]:
    def get(m: Any) -> str:
        v = m._d.get(key)
        return v if isinstance(v, str) else ""

    return _field(get, doc)


def int_field(key: str, doc: str | None = None) -> Field[int]:
    def get(m: Any) -> int:
        v = m._d.get(key)
        return v if type(v) is int else as_int(v)  # the common case without a call

    return _field(get, doc)


def bool_field(key: str, doc: str | None = None) -> Field[bool]:
    def get(m: Any) -> bool:
        return m._d.get(key) is True

    return _field(get, doc)


def strs_field(key: str, doc: str | None = None) -> Field[list[str]]:
    def get(m: Any) -> list[str]:
        v = m._d.get(key)
        return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []

    return _field(get, doc)


def enum_field(key: str, enum: type[IntEnum], doc: str | None = None) -> Field[str]:
    """The protojson enum name; a number is mapped to its name (unknown: the number as text)."""
    zero = enum(0).name

    def get(m: Any) -> str:
        v = m._d.get(key)
        if isinstance(v, str):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return enum_name(enum, v)
        return zero

    return _field(get, doc)


def msg_field(key: str, view: Callable[[JSON], M], doc: str | None = None) -> Field[M | None]:
    """A sub-message wrapped in `view` (a fresh view per access), or None when absent."""

    def get(m: Any) -> M | None:
        v = m._d.get(key)
        return view(v) if isinstance(v, dict) else None

    return _field(get, doc)


def msgs_field(key: str, view: Callable[[JSON], M], doc: str | None = None) -> Field[list[M]]:
    """A repeated message: its objects wrapped in `view` (other items skipped)."""

    def get(m: Any) -> list[M]:
        v = m._d.get(key)
        return [view(x) for x in v if isinstance(x, dict)] if isinstance(v, list) else []

    return _field(get, doc)
