"""The small parsers model/values.py mirrors from Go: strconv.ParseUint, netip.ParsePrefix,
IANA service names, Cilium's extended label keys, apimachinery's qualified names."""

from __future__ import annotations

import pytest

from ciliary.model.values import (
    ParsedPrefix,
    cilium_extended_key,
    go_parse_uint16,
    is_iana_svc_name,
    k8s_port_name_errors,
    label_value_errors,
    parse_prefix,
    printable,
    qualified_name_errors,
    re2_error,
)


@pytest.mark.parametrize(
    ("text", "value", "err"),
    [
        ("0", 0, None), ("80", 80, None), ("65535", 65535, None), ("010", 8, None),
        ("1_000", 1000, None), ("0x1F", 31, None), ("0o17", 15, None), ("0b101", 5, None),
        ("65536", 65535, "value out of range"), ("99999999999999999999x", 65535, "value out of range"),
        ("08", 0, "invalid syntax"), ("", 0, "invalid syntax"), ("-1", 0, "invalid syntax"),
        ("1__0", 0, "invalid syntax"), ("_1", 0, "invalid syntax"), ("1_", 0, "invalid syntax"),
        ("0x", 0, "invalid syntax"), ("8 0", 0, "invalid syntax"), ("+80", 0, "invalid syntax"),
    ],
)  # fmt: skip
def test_go_parse_uint16(text: str, value: int, err: str | None) -> None:
    assert go_parse_uint16(text) == (value, err)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("http", True), ("HTTP-Alt", True), ("h2c", True), ("0x50", True), ("a" * 15, True),
        ("a" * 16, False), ("8080", False), ("-http", False), ("http-", False), ("ht--tp", False),
        ("http_alt", False), ("", False),
    ],
)  # fmt: skip
def test_iana_service_names(name: str, ok: bool) -> None:
    assert is_iana_svc_name(name) is ok
    # Kubernetes is stricter: lower case only.
    if ok and name != name.lower():
        assert k8s_port_name_errors(name)


@pytest.mark.parametrize(
    ("text", "bits", "network"),
    [
        ("10.0.0.0/8", 8, "10.0.0.0/8"), ("10.1.2.3/8", 8, "10.0.0.0/8"),
        ("0.0.0.0/0", 0, "0.0.0.0/0"), ("2001:db8::1/32", 32, "2001:db8::/32"),
        ("::ffff:10.0.0.0/104", 104, "::ffff:a00:0/104"),
    ],
)  # fmt: skip
def test_parse_prefix_valid(text: str, bits: int, network: str) -> None:
    parsed = parse_prefix(text)
    assert isinstance(parsed, ParsedPrefix)
    assert (parsed.bits, str(parsed.network)) == (bits, network)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("10.0.0.1", "missing prefix length"), ("10.0.0.0/33", "out of range"),
        ("10.0.0.0/08", "leading zeros"), ("010.0.0.0/8", "invalid IP address"),
        ("10.0.0.0/", "bad prefix length"), ("10.0.0.0/-1", "bad prefix length"),
        ("fe80::1%eth0/64", "zones"), ("10.0.0.0/255.255.0.255", "non-contiguous mask"),
        ("10.0.0.0/255.255.0.0", "netmask notation"), ("example.com/8", "invalid IP address"),
        ("garbage", "not an IP prefix"),
    ],
)  # fmt: skip
def test_parse_prefix_invalid(text: str, reason: str) -> None:
    parsed = parse_prefix(text)
    assert isinstance(parsed, str) and reason in parsed


def test_parse_prefix_sloppy_marks_leading_zeros() -> None:
    parsed = parse_prefix("010.001.0.0/016", sloppy=True)
    assert isinstance(parsed, ParsedPrefix) and parsed.leading_zeros
    assert str(parsed.network) == "10.1.0.0/16"


@pytest.mark.parametrize(
    ("key", "extended"),
    [
        ("app", "any.app"), ("k8s:app", "k8s.app"), ("any:app", "any.app"),
        ("reserved:host", "reserved.host"), ("$host", "reserved.host"),
        ("reserved.host", "reserved.host"), ("k8s:app=web", "k8s.app"),
        ("k8s:io.kubernetes.pod.namespace", "k8s.io.kubernetes.pod.namespace"),
    ],
)  # fmt: skip
def test_cilium_extended_key(key: str, extended: str) -> None:
    assert cilium_extended_key(key) == extended


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("app", None), ("app.kubernetes.io/name", None), ("A-b_c.D", None), ("a" * 63, None),
        ("a" * 64, "name part must be no more than 63"), ("", "name part must be non-empty"),
        ("x/", "name part must be non-empty"), ("/x", "prefix part must be non-empty"),
        ("Ex.com/x", "prefix part a lowercase RFC 1123"), ("a/b/c", "a qualified name"),
        ("-a", "name part must consist"), (f"{'p' * 254}/x", "prefix part must be no more than 253"),
    ],
)  # fmt: skip
def test_qualified_names(name: str, fragment: str | None) -> None:
    errors = qualified_name_errors(name)
    if fragment is None:
        assert errors == []
    else:
        assert errors and fragment in errors[0]


def test_label_values_and_printable() -> None:
    assert label_value_errors("") == []
    assert label_value_errors("a.b-c_D") == []
    assert label_value_errors("a" * 64) == ["must be no more than 63 characters"]
    assert label_value_errors("a b")
    assert printable("Hubble: ok ✓") and not printable("tab\there") and not printable("\u200b")


def test_re2_matches_go_regexp_syntax() -> None:
    assert re2_error("/api/v[0-9]+/.*") is None
    assert re2_error("(?i)get|post") is None
    assert re2_error("(") is not None
    assert re2_error("a{1001}") is not None  # RE2's repeat limit, as in Go
    assert re2_error(r"(\w+)\1") is not None  # backreferences: Perl-only
    assert re2_error("(?=x)") is not None  # lookahead: Perl-only
