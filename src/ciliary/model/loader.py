"""Documents -> typed policies, all-or-nothing.

Every problem is reported with file, document, object, field path and line; if there is
any, `LoadError` is raised and nothing is returned (no half-loaded state). An object given
twice identically is loaded once with a warning, as `kubectl apply` accepts it.

Contracts:
* Documents are read, never changed. Policies come out in input order (documents, then
  the `items` of a List); other kinds are counted in `skipped_kinds`, except near-misses
  of a policy kind in the Cilium or Kubernetes API groups, which are errors.
* A policy is identified by kind, namespace ("default" when omitted, "" for clusterwide
  kinds) and name. A second object under one name is a warning if it is equal as parsed
  data (`_same_data`: key order aside, types included), else an error.
* `ValidationOptions` (agent flags) are the only other input to what is valid.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from ciliary.model.cilium import CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy
from ciliary.model.errors import (
    LoadError,
    Path,
    ValidationIssue,
    ValidationWarning,
    format_path,
    type_name,
)
from ciliary.model.k8s import NetworkPolicy
from ciliary.model.options import ValidationOptions
from ciliary.model.policy import (
    KIND_CCNP,
    KIND_CNP,
    KIND_KNP,
    LoadedPolicy,
    PolicyObject,
    PolicyRef,
    PolicySet,
)
from ciliary.model.source import Document
from ciliary.model.validate import validate_object

POLICY_KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    KIND_CNP: ("cilium.io/v2", CiliumNetworkPolicy),
    KIND_CCNP: ("cilium.io/v2", CiliumClusterwideNetworkPolicy),
    KIND_KNP: ("networking.k8s.io/v1", NetworkPolicy),
}
# Kinds seen in snapshots that wrap other objects.
LIST_KINDS = {"List"} | {f"{k}List" for k in POLICY_KINDS}


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, (dict, list)):
        return type_name(value)
    text = (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(tp: Any) -> list[Any]:
    """The model classes reachable through Optional/Union/list/dict annotations."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType, list, dict, typing.Annotated):
        out: list[Any] = []
        args = typing.get_args(tp)
        if origin is dict:
            args = args[1:]
        if origin is typing.Annotated:
            args = args[:1]
        for a in args:
            out.extend(_unwrap(a))
        return out
    return [tp]


def _models_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[type[BaseModel]]:
    """The model classes that can sit at `loc` inside `model`."""
    current: list[Any] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[Any] = []
        for m in current:
            if isinstance(m, type) and issubclass(m, BaseModel):
                for name, f in m.model_fields.items():
                    if (f.alias or name) == part:
                        nxt.extend(_unwrap(f.annotation))
        current = nxt
    return [m for m in current if isinstance(m, type) and issubclass(m, BaseModel)]


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Aliases of the fields allowed at `loc` (used for did-you-mean suggestions)."""
    return [f.alias or n for m in _models_at(model, loc) for n, f in m.model_fields.items()]


_DENY_L7 = "deny rules do not support L7 rules, TLS or listeners (cilium: deny.rst)"
# Fields that exist in the API, only not here: say why instead of guessing a typo.
_MISPLACED: dict[tuple[str, str], str] = {
    **{("PortDenyRule", k): _DENY_L7 for k in (
        "rules", "serverNames", "terminatingTLS", "originatingTLS", "listener")},
    ("EgressDenyRule", "toFQDNs"): "toFQDNs is not supported in deny rules (cilium: deny.rst)",
    ("EgressDenyRule", "authentication"): "authentication applies to allow rules only",
    ("IngressDenyRule", "authentication"): "authentication applies to allow rules only",
    ("IngressRule", "toFQDNs"): "toFQDNs is an egress-only field",
    ("IngressDenyRule", "toFQDNs"): "toFQDNs is an egress-only field",
}  # fmt: skip


def _literal_choices(expected: str) -> str:
    # pydantic: "'In', 'NotIn' or 'Exists'" -> '"In", "NotIn", "Exists"'
    return expected.replace("'", '"').replace('" or "', '", "')


def _message(err: Any, model: type[BaseModel]) -> str:
    kind = err["type"]
    value = err.get("input")
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        msg = f'unknown field "{key}"'
        for m in _models_at(model, loc[:-1]):
            if (m.__name__, key) in _MISPLACED:
                return f"{msg}: {_MISPLACED[m.__name__, key]}"
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if not close:
            lower = {k.lower(): k for k in known}
            if key.lower() in lower:
                close = [lower[key.lower()]]
        if close:
            msg += f' (did you mean "{close[0]}"?)'
        return msg
    got = (
        f"got {type_name(value)} {_show(value)}"
        if not isinstance(value, (dict, list))
        else f"got {type_name(value)}"
    )
    if kind == "string_type":
        hint = (
            ' (quote it: "' + str(value) + '")'
            if isinstance(value, int) and not isinstance(value, bool)
            else ""
        )
        return f"must be a string, {got}{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, {got}"
    if kind == "bool_type":
        return f"must be a boolean (true or false), {got}"
    if kind == "list_type":
        return f"must be a list, {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be an object, {got}"
    if kind == "literal_error":
        return f"unsupported value {_show(value)}: must be one of {_literal_choices(str(ctx.get('expected', '')))}"
    if kind == "int_or_string":
        return f"must be an integer or a string, {got}"
    bounds = {
        "less_than_equal": ("must be less than or equal to", "le"),
        "less_than": ("must be less than", "lt"),
        "greater_than_equal": ("must be greater than or equal to", "ge"),
        "greater_than": ("must be greater than", "gt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {ctx.get(key)}, {got}"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}"
    if kind in ("string_too_short", "too_short"):
        unit = "characters" if kind == "string_too_short" else "items"
        return f"must have at least {ctx.get('min_length')} {unit}"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}, {got}"
    return f"{err['msg']}, {got}"


def _strip_union_tags(loc: tuple[Any, ...]) -> Path:
    # pydantic inserts member tags like 'str' / 'int' / 'function-plain[...]' for unions.
    return tuple(
        p
        for p in loc
        if isinstance(p, int) or not (p in ("str", "int", "bool", "list", "dict") or "[" in p)
    )


def _object_label(kind: str, value: dict[str, Any]) -> str:
    meta = value.get("metadata")
    name = ns = None
    if isinstance(meta, dict):
        name = meta.get("name") if isinstance(meta.get("name"), str) else None
        ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
    if kind == KIND_CCNP:
        ns = None
    elif ns is None and kind in (KIND_CNP, KIND_KNP):
        ns = "default"
    ident = f"{ns}/{name}" if ns else (name or "<unnamed>")
    return f"{kind} {ident}"


def _same_data(a: Any, b: Any) -> bool:
    """Equal as parsed YAML/JSON data: key order and formatting aside, but `true` is not
    `1` and `1` is not `1.0` (Python's == would say they are)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_data(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_data(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def iter_objects(doc: Document) -> Iterable[tuple[Path, Any]]:
    """The objects of a document: itself, or the items of a `kind: List`."""
    v = doc.value
    if (
        isinstance(v, dict)
        and isinstance(v.get("kind"), str)
        and v["kind"] in LIST_KINDS
        and "items" in v
    ):
        items = v.get("items")
        if isinstance(items, list):
            for i, item in enumerate(items):
                yield ("items", i), item
            return
    yield (), v


def load_policies(
    documents: Iterable[Document], options: ValidationOptions | None = None
) -> PolicySet:
    """Typed, validated policies from documents; raises LoadError with every problem."""
    loader = _Loader(options or ValidationOptions())
    for doc in documents:
        for prefix, value in iter_objects(doc):
            loaded = loader.policy(doc, prefix, value)
            if loaded is not None:
                loader.keep(loaded, value)
    if loader.issues:
        raise LoadError(loader.issues, loader.result.warnings)
    return loader.result


class _Loader:
    """The state of one `load_policies`: what is loaded, and every problem found."""

    def __init__(self, options: ValidationOptions) -> None:
        self.options = options
        self.result = PolicySet()
        self.issues: list[ValidationIssue] = []
        # The first object loaded under each name, with its data to tell an identical
        # duplicate (a warning) from a different object with the same name (an error).
        self.seen: dict[PolicyRef, tuple[LoadedPolicy, dict[str, Any]]] = {}

    def issue(self, doc: Document, prefix: Path, path: Path, message: str, obj: str | None = None) -> None:
        full = (*prefix, *path)
        self.issues.append(ValidationIssue(doc.file, doc.line_of(full), doc.index, obj, format_path(full), message))

    def policy(self, doc: Document, prefix: Path, value: Any) -> LoadedPolicy | None:
        """The policy object at `prefix` of `doc`, typed and validated; None when it is of
        another kind (counted) or has problems (reported)."""
        if not isinstance(value, dict):
            self.issue(doc, prefix, (), f"a Kubernetes object must be a mapping, got {type_name(value)}")
            return None
        kind = value.get("kind")
        api_version = value.get("apiVersion")
        if not isinstance(kind, str) or not kind:
            self.issue(doc, prefix, ("kind",), "every object needs a kind")
            return None
        if kind not in POLICY_KINDS:
            if isinstance(api_version, str) and api_version.split("/")[0] in ("cilium.io", "networking.k8s.io"):
                close = difflib.get_close_matches(kind, list(POLICY_KINDS), n=1, cutoff=0.85)
                if close:
                    self.issue(doc, prefix, ("kind",), f'unknown kind "{kind}" (did you mean "{close[0]}"?)')
                    return None
            skipped = self.result.skipped_kinds
            skipped[kind] = skipped.get(kind, 0) + 1
            return None
        want_api, model = POLICY_KINDS[kind]
        label = _object_label(kind, value)
        if api_version != want_api:
            self.issue(doc, prefix, ("apiVersion",), f"{kind} is served as apiVersion {want_api}, got {_show(api_version)}", label)
            return None
        try:
            obj = typing.cast(PolicyObject, model.model_validate(value))
        except ValidationError as e:
            for err in e.errors(include_url=False):
                self.issue(doc, prefix, _strip_union_tags(tuple(err["loc"])), _message(err, model), label)
            return None
        problems = validate_object(obj, self.options)
        for path, message in problems:
            self.issue(doc, prefix, path, message, label)
        if problems:
            return None
        meta = obj.metadata
        ns = "" if kind == KIND_CCNP else (meta.namespace or "default")
        return LoadedPolicy(PolicyRef(kind, ns, meta.name or ""), obj, doc.file, doc.index, prefix, doc.lines)

    def keep(self, loaded: LoadedPolicy, value: dict[str, Any]) -> None:
        """Add a loaded policy: a second object under its name is a warning when identical,
        an error otherwise."""
        ref = loaded.ref
        if ref not in self.seen:
            self.seen[ref] = (loaded, value)
            self.result.policies.append(loaded)
            return
        first, first_value = self.seen[ref]
        label = _object_label(ref.kind, value)
        if _same_data(value, first_value):
            line = first.line_of(())
            at = first.file if line is None else f"{first.file}:{line}"
            self.result.warnings.append(ValidationWarning(
                loaded.file, loaded.line_of(()), loaded.document, label, "",
                f"duplicate of the identical object at {at}, document {first.document}; loaded once",
            ))
            return
        self.issues.append(ValidationIssue(
            loaded.file, loaded.line_of(("metadata", "name")), loaded.document, label, format_path((*loaded.path, "metadata", "name")),
            f"{ref} is defined twice (first in {first.file}, document {first.document})",
        ))
