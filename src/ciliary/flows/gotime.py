"""Time as Hubble handles it: protobuf timestamps (nanoseconds), Go layouts and durations.

Python's datetime stops at microseconds; flows carry nanoseconds, so times are integers of
nanoseconds since the Unix epoch (UTC) here. The formats are the ones the hubble CLI knows
(hubble/pkg/time): `--time-format` names for printing, and for `--since/--until` either a Go
duration (`90s`, `1h43m`, relative to now) or one of its absolute layouts.

Contracts: pure functions. Nothing reads the clock; `parse_time_arg` takes "now" from the
caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from functools import lru_cache
from typing import Final

NS: Final = 1_000_000_000
Formatter = Callable[[int], str]
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
# google.protobuf.Timestamp validity: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
MIN_TS_NS: Final = -62135596800 * NS
MAX_TS_NS: Final = 253402300799 * NS + 999_999_999

MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_RFC3339_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


@lru_cache(maxsize=4096)
def _days(year: int, month: int, day: int) -> int:
    return date(year, month, day).toordinal() - _EPOCH_ORDINAL


def _epoch_seconds(y: int, mo: int, d: int, h: int, mi: int, s: int) -> int | None:
    if not (1 <= mo <= 12 and h <= 23 and mi <= 59 and s <= 59):
        return None
    try:
        days = _days(y, mo, d)
    except ValueError:
        return None
    return ((days * 24 + h) * 60 + mi) * 60 + s


def parse_rfc3339_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 timestamp (protojson's format), or None."""
    m = _RFC3339_RE.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    secs = _epoch_seconds(int(y), int(mo), int(d), int(h), int(mi), int(s))
    if secs is None:
        return None
    if not z:
        off = int(oh) * 3600 + int(om) * 60
        if int(oh) > 23 or int(om) > 59:
            return None
        secs -= off if sign == "+" else -off
    ns = secs * NS + (int(frac.ljust(9, "0")) if frac else 0)
    if not MIN_TS_NS <= ns <= MAX_TS_NS:
        return None
    return ns


def _civil(ns: int) -> tuple[int, int, int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second, nanos, weekday) in UTC."""
    secs, nanos = divmod(ns, NS)
    days, rem = divmod(secs, 86400)
    d = date.fromordinal(days + _EPOCH_ORDINAL)
    h, rem = divmod(rem, 3600)
    mi, s = divmod(rem, 60)
    return d.year, d.month, d.day, h, mi, s, nanos, d.weekday()


def format_rfc3339_proto(ns: int) -> str:
    """protojson's rendering: UTC, `Z`, with 0, 3, 6 or 9 fractional digits."""
    y, mo, d, h, mi, s, nanos, _ = _civil(ns)
    base = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    if nanos == 0:
        return base + "Z"
    if nanos % 1_000_000 == 0:
        return f"{base}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{base}.{nanos // 1000:06d}Z"
    return f"{base}.{nanos:09d}Z"


def _trimmed_frac(nanos: int, digits: int) -> str:
    """Go's `.999…` layout element: up to `digits` digits, trailing zeros (and dot) dropped."""
    text = f"{nanos:09d}"[:digits].rstrip("0")
    return "." + text if text else ""


# --time-format names (hubble/pkg/time FormatNames) -> formatter of UTC nanoseconds.
def _stamp_milli(ns: int) -> str:
    _, mo, d, h, mi, s, nanos, _ = _civil(ns)
    return f"{MONTHS[mo - 1]} {d:2d} {h:02d}:{mi:02d}:{s:02d}.{nanos // 1_000_000:03d}"


def _rfc3339(digits: int) -> Formatter:
    def fmt(ns: int) -> str:
        y, mo, d, h, mi, s, nanos, _ = _civil(ns)
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{_trimmed_frac(nanos, digits)}Z"

    return fmt


def _year_month_day(ns: int) -> str:
    y, mo, d, *_ = _civil(ns)
    return f"{y:04d}-{mo:02d}-{d:02d}"


def _year_month_day_hour(ns: int) -> str:
    y, mo, d, h, *_ = _civil(ns)
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}Z"


def _year_month_day_hour_minute(ns: int) -> str:
    y, mo, d, h, mi, *_ = _civil(ns)
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}Z"


def _rfc1123z(ns: int) -> str:
    y, mo, d, h, mi, s, _, wd = _civil(ns)
    return f"{WEEKDAYS[wd]}, {d:02d} {MONTHS[mo - 1]} {y:04d} {h:02d}:{mi:02d}:{s:02d} +0000"


TIME_FORMATS: Final[dict[str, Formatter]] = {
    "yearmonthday": _year_month_day,
    "yearmonthdayhour": _year_month_day_hour,
    "yearmonthdayhourminute": _year_month_day_hour_minute,
    "stampmilli": _stamp_milli,
    "rfc3339": _rfc3339(0),
    "rfc3339milli": _rfc3339(3),
    "rfc3339micro": _rfc3339(6),
    "rfc3339nano": _rfc3339(9),
    "rfc1123z": _rfc1123z,
}
TIME_FORMAT_NAMES: Final = (
    "YearMonthDay",
    "YearMonthDayHour",
    "YearMonthDayHourMinute",
    "StampMilli",
    "RFC3339",
    "RFC3339Milli",
    "RFC3339Micro",
    "RFC3339Nano",
    "RFC1123Z",
)


def time_formatter(name: str) -> Formatter:
    """The formatter for a `--time-format` name; unknown names give StampMilli, like hubble."""
    return TIME_FORMATS.get(name.lower(), _stamp_milli)


_PROTO_TS_RE: Final = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z\Z")


@lru_cache(maxsize=65536)
def _stamp_head(head: str) -> str | None:
    """`Jan _2 15:04:05` of `YYYY-MM-DDTHH:MM:SS` (UTC), or None if it is no valid time."""
    secs = _epoch_seconds(
        int(head[0:4]),
        int(head[5:7]),
        int(head[8:10]),
        int(head[11:13]),
        int(head[14:16]),
        int(head[17:19]),
    )
    if secs is None or not MIN_TS_NS <= secs * NS <= MAX_TS_NS:
        return None
    day = int(head[8:10])
    return f"{MONTHS[int(head[5:7]) - 1]} {day:2d} {head[11:19]}"


def format_flow_time(value: object, fmt: Formatter) -> str:
    """The flow `time` field as hubble prints it: the layout, or `N/A` when absent.

    Raises ValueError when `value` is not a valid timestamp (protojson would reject it).
    """
    if value is None:
        return "N/A"
    if not isinstance(value, str):
        raise ValueError(f"invalid timestamp {value!r}")
    if fmt is _stamp_milli:
        # Fast path for protojson's own (UTC) output; Go truncates to milliseconds.
        m = _PROTO_TS_RE.match(value)
        if m is not None:
            head = _stamp_head(m[1])
            if head is not None:
                frac = m[2] or ""
                return f"{head}.{(frac + '000')[:3]}"
    ns = parse_rfc3339_ns(value)
    if ns is None:
        raise ValueError(f"invalid timestamp {value!r}")
    return fmt(ns)


# Go durations (time.ParseDuration).
_DURATION_UNITS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1000,
    "µs": 1000,  # U+00B5
    "μs": 1000,  # U+03BC
    "ms": 1_000_000,
    "s": NS,
    "m": 60 * NS,
    "h": 3600 * NS,
}
_DURATION_PART_RE: Final = re.compile(r"(\d*)(?:\.(\d*))?([a-zµμ]+)")


def parse_go_duration(text: str) -> int | None:
    """Nanoseconds of a Go duration (`300ms`, `-1.5h`, `2h45m`), or None if it is not one."""
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART_RE.match(s, pos)
        if m is None:
            return None
        whole, frac, unit = m.groups()
        if not whole and not frac:
            return None
        scale = _DURATION_UNITS.get(unit)
        if scale is None:
            return None
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // 10 ** len(frac)
        total += value
        pos = m.end()
    if total > 2**63 - 1:
        return None
    return -total if neg else total


_YMD_RE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
_YMDH_RE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:\d{2})\Z")
_RFC1123Z_RE: Final = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? ([+-])(\d{2})(\d{2})\Z"
)


def _offset_seconds(text: str) -> int:
    if text == "Z":
        return 0
    off = int(text[1:3]) * 3600 + int(text[4:6]) * 60
    return off if text[0] == "+" else -off


def parse_time_arg(text: str, now_ns: int) -> int:
    """`--since`/`--until`: a Go duration before `now_ns`, or an absolute time (ns).

    Absolute layouts, as hubble accepts them: `2006-01-02`, `2006-01-02T15Z07:00`,
    `2006-01-02T15:04Z07:00`, RFC 3339 (with any fraction) and RFC 1123Z. Raises ValueError.
    """
    d = parse_go_duration(text)
    if d is not None:
        return now_ns - d
    ns = parse_rfc3339_ns(text)
    if ns is not None:
        return ns
    m = _YMD_RE.match(text)
    if m:
        secs = _epoch_seconds(int(m[1]), int(m[2]), int(m[3]), 0, 0, 0)
        if secs is not None:
            return secs * NS
    m = _YMDH_RE.match(text)
    if m:
        secs = _epoch_seconds(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5] or 0), 0)
        if secs is not None:
            return (secs - _offset_seconds(m[6])) * NS
    m = _RFC1123Z_RE.match(text)
    if m:
        mo = MONTHS.index(m[3]) + 1
        secs = _epoch_seconds(int(m[4]), mo, int(m[2]), int(m[5]), int(m[6]), int(m[7]))
        if secs is not None:
            off = int(m[9]) * 3600 + int(m[10]) * 60
            return (secs - (off if m[8] == "+" else -off)) * NS
    raise ValueError(f"failed to convert {text} to time")
