"""Reading and checking an expectations file: every problem located (file, line, case,
field), at most one per case, and nothing returned unless the whole file is good.

What needs the cluster (do the pods exist?) is checked by `run.prepare`."""

from __future__ import annotations

import difflib
import os
from typing import Any

from ciliary.l7.kafka import kafka_api_key_name
from ciliary.model.errors import LoadError, ValidationIssue, format_path, type_name
from ciliary.model.errors import Path as FieldPath
from ciliary.model.source import Document, parse_text
from ciliary.policy.config import config_from_document, option_attribute
from ciliary.policy.ports import PROTO_NUMBERS
from ciliary.verdict.types import L7Request
from ciliary.workflows.expect.grid import GridError, parse_grid, row_line
from ciliary.workflows.expect.model import (
    AUDITED,
    DENIED,
    DNS_RCODES,
    DROP_REASONS,
    EXPECTS,
    GRID_SYMBOLS,
    Case,
    ExpectationsFile,
    port_text,
)
from ciliary.workflows.trace import build_request, parse_dport, parse_icmp, parse_resolve

TOP_KEYS = ("cluster", "policies", "config", "options", "cases", "tables")
CASE_KEYS = ("name", "from", "to", "port", "icmp", "http", "dns", "kafka", "resolve", "expect", "reason", "l7_status")
TABLE_KEYS = ("name", "port", "icmp", "grid")
REQUEST_KEYS = {
    "http": ("method", "path", "host", "headers"),
    "dns": ("query",),
    "kafka": ("role", "api_key", "topic", "topics", "client_id", "api_version"),
}
TCP, UDP = PROTO_NUMBERS["TCP"], PROTO_NUMBERS["UDP"]


class _Bad(Exception):
    """The first problem of one case, table or key."""

    def __init__(self, path: FieldPath, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.path, self.message, self.line = path, message, line


def load_expectations(path: str | os.PathLike[str]) -> ExpectationsFile:
    """Read and check one expectations file; LoadError with every problem otherwise."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise LoadError([ValidationIssue(file, None, None, None, "", f"cannot read the expectations file: {why}")]) from None
    docs = parse_text(text, file)
    if len(docs) != 1 or not isinstance(docs[0].value, dict):
        line = docs[1].line_of(()) if len(docs) > 1 else None
        raise LoadError([ValidationIssue(file, line, None, None, "", "an expectations file is one YAML mapping (cluster, cases, tables, ...)")])
    return _Loader(docs[0], text).load()


def _hint(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _unknown_keys(path: FieldPath, value: dict[str, Any], known: tuple[str, ...]) -> None:
    for k in value:
        if k not in known:
            raise _Bad((*path, k), f'unknown key "{k}"{_hint(str(k), known)}; known keys: {", ".join(known)}')


def _text(path: FieldPath, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(path, f"must be a non-empty string, got {type_name(value)} {value!r}")
    return value.strip()


class _Loader:
    def __init__(self, doc: Document, text: str) -> None:
        self.doc = doc
        self.file = doc.file
        self.base = os.path.dirname(self.file)
        self.raw_lines = text.splitlines()
        self.issues: list[ValidationIssue] = []

    def issue(self, path: FieldPath, message: str, obj: str | None = None, line: int | None = None) -> None:
        line = line or self.doc.line_of(path)
        self.issues.append(ValidationIssue(self.file, line, None, obj, format_path(path), message))

    def line(self, path: FieldPath) -> int:
        return self.doc.line_of(path) or 1

    def load(self) -> ExpectationsFile:
        top: dict[str, Any] = self.doc.value
        try:
            _unknown_keys((), top, TOP_KEYS)
        except _Bad as b:
            self.issue(b.path, b.message)
        cluster = self.path_of(("cluster",), top.get("cluster"), required=True)
        policies = self.policies(top["policies"]) if "policies" in top else None
        config = self.path_of(("config",), top["config"], files_only=True) if "config" in top else None
        options = self.options(top["options"]) if "options" in top else {}
        cases: list[Case] = []
        for key, parse in (("cases", self.case), ("tables", self.table)):
            items = top.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                self.issue((key,), f"must be a list, got {type_name(items)}")
                continue
            for i, item in enumerate(items):
                try:
                    cases.extend(parse(i, item))
                except _Bad as b:
                    name = item.get("name") if isinstance(item, dict) else None
                    what = "case" if key == "cases" else "table"
                    self.issue(b.path, b.message, f'{what} "{name}"' if isinstance(name, str) else None, b.line)
        if not top.get("cases") and not top.get("tables"):
            self.issue((), "no cases and no tables: nothing to test")
        self.no_duplicate_names(top)
        if self.issues:
            raise LoadError(self.issues)
        assert cluster is not None
        return ExpectationsFile(self.file, cluster, policies, config, options, tuple(cases))

    # -- the cluster, the policies, the agent ------------------------------------------
    def path_of(self, path: FieldPath, value: Any, *, required: bool = False, files_only: bool = False) -> str | None:
        if value is None and required:
            self.issue(path[:-1], f'missing required key "{path[-1]}" (the cluster snapshot: a file or a directory of manifests)')
            return None
        if not isinstance(value, str) or not value.strip():
            self.issue(path, f"must be a path (relative to the expectations file), got {type_name(value)}")
            return None
        full = os.path.normpath(os.path.join(self.base, value.strip()))
        if not os.path.exists(full) or (files_only and not os.path.isfile(full)):
            self.issue(path, f"no such {'file' if files_only else 'file or directory'}: {full}")
            return None
        return full

    def policies(self, value: Any) -> tuple[str, ...] | None:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            self.issue(("policies",), "must be a path or a non-empty list of paths (leave it out to use the snapshot's policies)")
            return None
        found = [self.path_of(("policies", i) if isinstance(value, list) else ("policies",), v) for i, v in enumerate(items)]
        return tuple(p for p in found if p is not None)

    def options(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.issue(("options",), "must be a mapping of Cilium agent option names (enable-policy, policy-audit-mode, ...)")
            return {}
        try:
            cfg = config_from_document(self.doc.sub(("options",)))
        except LoadError as e:
            for i in e.issues:
                self.issues.append(ValidationIssue(self.file, i.line, None, None, f"options.{i.field}" if i.field else "options", i.message))
            return {}
        return {option_attribute(k): getattr(cfg, option_attribute(k)) for k in value}

    # -- cases ---------------------------------------------------------------------------
    def case(self, i: int, item: Any) -> list[Case]:
        path: FieldPath = ("cases", i)
        if not isinstance(item, dict):
            raise _Bad(path, "a case is a mapping: name, from, to, port (or icmp), expect, ...")
        _unknown_keys(path, item, CASE_KEYS)
        missing = [k for k in ("name", "from", "to", "expect") if k not in item]
        if missing:
            raise _Bad(path, f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        name = _text((*path, "name"), item["name"])
        src = _text((*path, "from"), item["from"])
        dst = _text((*path, "to"), item["to"])
        kinds = [k for k in REQUEST_KEYS if k in item]
        if len(kinds) > 1:
            raise _Bad((*path, kinds[1]), f"give one L7 request (http, dns or kafka), not {' and '.join(kinds)}")
        kind = kinds[0] if kinds else None
        proto, port = self.port(path, item, default_dns=kind == "dns")
        if kind in ("http", "kafka") and proto != TCP:
            raise _Bad((*path, "port" if "port" in item else "icmp"), f"a {kind} request needs a TCP port, got {port_text(proto, port)}")
        if kind == "dns" and proto not in (TCP, UDP):
            raise _Bad((*path, "port" if "port" in item else "icmp"), f"a DNS query needs a UDP or TCP port, got {port_text(proto, port)}")
        request = self.request((*path, kind), kind, item[kind]) if kind else None
        resolve = self.resolve((*path, "resolve"), item["resolve"]) if "resolve" in item else ()
        expect = item["expect"]
        if expect not in EXPECTS:
            raise _Bad((*path, "expect"), f"unknown expect {expect!r}: use one of {', '.join(EXPECTS)}")
        reason = self.reason((*path, "reason"), item["reason"], expect) if "reason" in item else None
        l7_status = self.l7_status((*path, "l7_status"), item["l7_status"], kind) if "l7_status" in item else None
        where = {k: (self.line((*path, k)), format_path((*path, k))) for k in ("from", "to", "resolve")}
        return [Case(self.file, self.line(path), name, src, dst, proto, port, expect, request, kind,
                     resolve, reason, l7_status, None, where)]

    def port(self, path: FieldPath, item: dict[str, Any], *, default_dns: bool = False) -> tuple[int, int]:
        if "port" in item and "icmp" in item:
            raise _Bad((*path, "icmp"), "give port or icmp, not both")
        try:
            if "port" in item:
                v = item["port"]
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise _Bad((*path, "port"), f"must be PORT/PROTO like 8443/TCP, got {type_name(v)}")
                return parse_dport(str(v).strip())
            if "icmp" in item:
                v = item["icmp"]
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise _Bad((*path, "icmp"), f"must be an ICMP type like EchoRequest or 128/v6, got {type_name(v)}")
                return parse_icmp(str(v).strip())
        except ValueError as e:
            raise _Bad((*path, "port" if "port" in item else "icmp"), str(e)) from None
        if default_dns:
            return UDP, 53
        raise _Bad(path, "missing port (PORT/PROTO, e.g. 8443/TCP) or icmp (TYPE[/v6], e.g. EchoRequest)")

    def request(self, path: FieldPath, kind: str, value: Any) -> L7Request | None:
        examples = {"http": "{method: GET, path: /}", "dns": "{query: example.com}", "kafka": "{role: produce, topic: orders}"}
        if not isinstance(value, dict):
            raise _Bad(path, f"must be a mapping, e.g. {kind}: {examples[kind]}")
        _unknown_keys(path, value, REQUEST_KEYS[kind])
        try:
            if kind == "http":
                for k in ("method", "path"):
                    if k not in value:
                        raise _Bad(path, f'missing "{k}": an http request is {examples[kind]} (host and headers optional)')
                headers = value.get("headers", [])
                if isinstance(headers, str):
                    headers = [headers]
                if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
                    raise _Bad((*path, "headers"), "must be a list of 'Name: value' strings")
                host = _text((*path, "host"), value["host"]) if "host" in value else None
                return build_request(http=(_text((*path, "method"), value["method"]), _text((*path, "path"), value["path"])),
                                     http_host=host, http_headers=headers)
            if kind == "dns":
                if "query" not in value:
                    raise _Bad(path, 'missing "query": the name looked up, e.g. dns: {query: example.com}')
                return build_request(dns_query=_text((*path, "query"), value["query"]))
            return self.kafka(path, value)
        except ValueError as e:
            raise _Bad(path, str(e)) from None

    def kafka(self, path: FieldPath, value: dict[str, Any]) -> L7Request | None:
        if ("role" in value) == ("api_key" in value):
            raise _Bad(path, "give role (produce | consume) or api_key (a Kafka API key name), one of them")
        if "topic" in value and "topics" in value:
            raise _Bad((*path, "topics"), "give topic or topics, not both")
        topics = [value["topic"]] if "topic" in value else value.get("topics", [])
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise _Bad((*path, "topic" if "topic" in value else "topics"), "topics must be strings")
        key = value.get("api_key")
        if isinstance(key, int) and not isinstance(key, bool):
            key = kafka_api_key_name(key)
        version = value.get("api_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise _Bad((*path, "api_version"), f"must be an integer, got {type_name(version)}")
        role = _text((*path, "role"), value["role"]) if "role" in value else None
        client = _text((*path, "client_id"), value["client_id"]) if "client_id" in value else None
        return build_request(kafka_role=role, kafka_api_key_name=None if key is None else str(key),
                             kafka_topics=topics, kafka_client_id=client, kafka_api_version=version)

    def resolve(self, path: FieldPath, value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if not isinstance(value, dict) or not value:
            raise _Bad(path, "must be a mapping of names to their addresses, e.g. {api.example.com: [203.0.113.10]}")
        out = []
        for name, ips in value.items():
            items = [ips] if isinstance(ips, str) else ips
            if not isinstance(items, list) or not items or not all(isinstance(ip, str) for ip in items):
                raise _Bad((*path, name), "must be an IP address or a list of them")
            try:
                n, parsed = parse_resolve(f"{name}={','.join(items)}")
            except ValueError as e:
                raise _Bad((*path, name), str(e)) from None
            out.append((n, tuple(parsed)))
        return tuple(out)

    def reason(self, path: FieldPath, value: Any, expect: str) -> str:
        if expect not in (DENIED, AUDITED):
            raise _Bad(path, f"reason is the drop reason of a denied or audited flow; this case expects {expect}")
        name = DROP_REASONS.get(str(value).strip().lower())
        if name is None or isinstance(value, bool):
            raise _Bad(path, f"unknown drop reason {value!r}: use POLICY_DENIED (133, no allow under default deny), "
                             "POLICY_DENY (181, a deny rule) or AUTH_REQUIRED (189)")
        return name

    def l7_status(self, path: FieldPath, value: Any, kind: str | None) -> str:
        if kind is None:
            raise _Bad(path, "l7_status is the proxy's answer to a request: give the case an http, dns or kafka request")
        text = str(value).strip()
        if kind == "dns":
            if not isinstance(value, str) or text.upper() not in DNS_RCODES:
                raise _Bad(path, f"a DNS rcode is one of {', '.join(DNS_RCODES)}, got {value!r}")
            return text.upper()
        if isinstance(value, bool) or not text.isdigit() or (kind == "http" and not 100 <= int(text) <= 599):
            what = "an HTTP status (403)" if kind == "http" else "a Kafka error code (a number)"
            raise _Bad(path, f"must be {what}, got {value!r}")
        return str(int(text))

    # -- tables ----------------------------------------------------------------------------
    def table(self, i: int, item: Any) -> list[Case]:
        path: FieldPath = ("tables", i)
        if not isinstance(item, dict):
            raise _Bad(path, "a table is a mapping: name, port (or icmp), grid")
        _unknown_keys(path, item, TABLE_KEYS)
        missing = [k for k in ("name", "grid") if k not in item]
        if missing:
            raise _Bad(path, f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        name = _text((*path, "name"), item["name"])
        proto, port = self.port(path, item)
        gpath: FieldPath = (*path, "grid")
        if not isinstance(item["grid"], str):
            raise _Bad(gpath, f"must be a text block (grid: |), got {type_name(item['grid'])}")
        key_line = self.line(gpath)
        try:
            grid = parse_grid(item["grid"])
        except GridError as e:
            raise _Bad(gpath, e.message, row_line(self.raw_lines, key_line, e.row)) from None
        field = format_path(gpath)
        head = row_line(self.raw_lines, key_line, grid.header_row)
        cases = []
        for c in grid.cells:
            line = row_line(self.raw_lines, key_line, c.row)
            cases.append(Case(
                self.file, line, f"{name}: {c.src} -> {c.dst} {port_text(proto, port)}", c.src, c.dst, proto, port,
                GRID_SYMBOLS[c.symbol], table=name, where={"from": (line, field), "to": (head, field)},
            ))
        return cases

    def no_duplicate_names(self, top: dict[str, Any]) -> None:
        for key, what in (("cases", "case"), ("tables", "table")):
            items = top.get(key)
            seen: dict[str, int] = {}
            for i, item in enumerate(items if isinstance(items, list) else []):
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str):
                    continue
                line = self.line((key, i))
                if name.strip() in seen:
                    self.issue((key, i, "name"), f"duplicate {what} name (first on line {seen[name.strip()]})", f'{what} "{name}"')
                else:
                    seen[name.strip()] = line
