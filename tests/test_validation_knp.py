"""networking.k8s.io/v1 NetworkPolicy: the API server's validation, one bad policy each.

Each case is the `spec` of a NetworkPolicy. The line carrying `#!` is where the single
expected issue must be reported; without a marker it is the `spec:` line.
"""

from __future__ import annotations

import textwrap

import pytest

from ciliary.model.errors import LoadError
from ciliary.model.loader import load_policies
from ciliary.model.source import parse_text


def document(body: str) -> str:
    body = textwrap.dedent(body).strip("\n")
    spec_mark = "" if "#!" in body else "  #!"
    return (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata:\n  name: np\n  namespace: ns\n"
        f"spec:{spec_mark}\n" + textwrap.indent(body, "  ") + "\n"
    )


def expect_one_issue(text: str, field: str, fragment: str) -> None:
    marked = [i for i, line in enumerate(text.splitlines(), 1) if "#!" in line]
    assert len(marked) == 1, "a case marks exactly one line"
    with pytest.raises(LoadError) as err:
        load_policies(parse_text(text, "bad.yaml"))
    got = [(i.field, i.line, i.message) for i in err.value.issues]
    assert [(f, ln) for f, ln, _ in got] == [(field, marked[0])], got
    assert fragment in got[0][2], got


def ingress_port(port: str) -> str:
    return f"podSelector: {{}}\ningress:\n- ports:\n  - {port}  #!"


def ingress_peer(peer: str) -> str:
    return f"podSelector: {{}}\ningress:\n- from:\n  - {peer}  #!"


P = "spec.ingress[0].ports[0]"
F = "spec.ingress[0].from[0]"

CASES = [
    # id, spec body, field, message fragment
    ("pod-selector-missing", "policyTypes: [Ingress]", "spec.podSelector", "required field is missing"),
    ("key-prefix-upper-case", 'podSelector: {matchLabels: {"Example.com/app": x}}  #!',
     "spec.podSelector.matchLabels.Example.com/app", 'invalid key "Example.com/app": prefix part a lowercase RFC 1123 subdomain'),
    ("key-prefix-too-long", f'podSelector: {{matchLabels: {{"{"a" * 254}/app": x}}}}  #!',
     f"spec.podSelector.matchLabels.{'a' * 254}/app", "prefix part must be no more than 253 characters"),
    ("key-prefix-empty", 'podSelector: {matchLabels: {"/app": x}}  #!',
     "spec.podSelector.matchLabels./app", "prefix part must be non-empty"),
    ("key-name-too-long", f"podSelector: {{matchLabels: {{{'n' * 64}: x}}}}  #!",
     f"spec.podSelector.matchLabels.{'n' * 64}", "name part must be no more than 63 characters"),
    ("key-name-chars", 'podSelector: {matchLabels: {"app_": x}}  #!',
     "spec.podSelector.matchLabels.app_", "name part must consist of alphanumeric characters"),
    ("key-cilium-source", 'podSelector: {matchLabels: {"k8s:app": x}}  #!',
     "spec.podSelector.matchLabels.k8s:app", 'invalid key "k8s:app"'),
    ("key-two-slashes", 'podSelector: {matchExpressions: [{key: "a/b/c", operator: Exists}]}  #!',
     "spec.podSelector.matchExpressions[0].key", "with an optional DNS subdomain prefix and '/'"),
    ("value-too-long", f"podSelector: {{matchLabels: {{app: {'v' * 64}}}}}  #!",
     "spec.podSelector.matchLabels.app", "must be no more than 63 characters"),
    ("value-chars", 'podSelector: {matchLabels: {app: "a b"}}  #!',
     "spec.podSelector.matchLabels.app", "a valid label must be an empty string or consist of"),
    ("in-without-values", "podSelector:\n  matchExpressions:\n  - {key: app, operator: In}  #!",
     "spec.podSelector.matchExpressions[0]", "must be specified when `operator` is 'In' or 'NotIn'"),
    ("notin-empty-values", "podSelector:\n  matchExpressions:\n  - key: app\n    operator: NotIn\n    values: []  #!",
     "spec.podSelector.matchExpressions[0].values", "must be specified when `operator` is 'In' or 'NotIn'"),
    ("exists-with-values", "podSelector:\n  matchExpressions:\n  - key: app\n    operator: Exists\n    values: [a]  #!",
     "spec.podSelector.matchExpressions[0].values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
    ("does-not-exist-with-values", "podSelector:\n  matchExpressions:\n  - key: app\n    operator: DoesNotExist\n    values: [a]  #!",
     "spec.podSelector.matchExpressions[0].values", "may not be specified"),
    ("expression-value-chars", "podSelector:\n  matchExpressions:\n  - key: app\n    operator: In\n    values: [ok, 'no!']  #!",
     "spec.podSelector.matchExpressions[0].values[1]", 'invalid value "no!"'),
    ("operator-enum", "podSelector:\n  matchExpressions:\n  - key: app\n    operator: in  #!",
     "spec.podSelector.matchExpressions[0].operator", 'unsupported value "in"'),
    # ports
    ("protocol-icmp", ingress_port("protocol: ICMP"), f"{P}.protocol", 'unsupported value "ICMP": must be one of "TCP", "UDP", "SCTP"'),
    ("protocol-lower-case", ingress_port("protocol: tcp"), f"{P}.protocol", 'unsupported value "tcp"'),
    ("port-zero", ingress_port("port: 0"), f"{P}.port", "must be between 1 and 65535, inclusive"),
    ("port-too-high", ingress_port("port: 65536"), f"{P}.port", "must be between 1 and 65535, inclusive"),
    ("port-name-too-long", ingress_port("port: abcdefghijklmnop"), f"{P}.port", "must be no more than 15 characters"),
    ("port-name-upper-case", ingress_port("port: Http"), f"{P}.port", "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
    ("port-name-no-letter", ingress_port('port: "8080"'), f"{P}.port", "must contain at least one letter (a-z)"),
    ("port-name-double-hyphen", ingress_port("port: web--tls"), f"{P}.port", "must not contain consecutive hyphens"),
    ("port-name-edge-hyphen", ingress_port("port: web-"), f"{P}.port", "must not begin or end with a hyphen"),
    ("port-float", ingress_port("port: 80.5"), f"{P}.port", "must be an integer or a string"),
    ("end-port-with-name", "podSelector: {}\ningress:\n- ports:\n  - port: http\n    endPort: 90  #!",
     f"{P}.endPort", "may not be specified when `port` is non-numeric"),
    ("end-port-below-port", "podSelector: {}\ningress:\n- ports:\n  - port: 90\n    endPort: 80  #!",
     f"{P}.endPort", "must be greater than or equal to `port`"),
    ("end-port-without-port", "podSelector: {}\negress:\n- ports:\n  - endPort: 80  #!",
     "spec.egress[0].ports[0].endPort", "may not be specified when `port` is not specified"),
    ("end-port-too-high", "podSelector: {}\ningress:\n- ports:\n  - port: 90\n    endPort: 65536  #!",
     f"{P}.endPort", "must be between 1 and 65535, inclusive"),
    # peers
    ("peer-empty", ingress_peer("{}"), F, "must specify a peer"),
    ("ip-block-and-pod-selector", ingress_peer("{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}"),
     f"{F}.ipBlock", "may not specify both ipBlock and another peer"),
    ("ip-block-and-namespace-selector", "podSelector: {}\negress:\n- to:\n  - namespaceSelector: {}\n    ipBlock: {cidr: 10.0.0.0/8}  #!",
     "spec.egress[0].to[0].ipBlock", "may not specify both ipBlock and another peer"),
    ("namespace-selector-key", ingress_peer('namespaceSelector: {matchLabels: {"kubernetes.io/": x}}'),
     f"{F}.namespaceSelector.matchLabels.kubernetes.io/", "name part must be non-empty"),
    ("pod-selector-in-peer", ingress_peer("podSelector: {matchExpressions: [{key: app, operator: In}]}"),
     f"{F}.podSelector.matchExpressions[0]", "must be specified"),
    ("cidr-missing", ingress_peer("ipBlock: {except: [10.0.0.0/16]}"), f"{F}.ipBlock.cidr", "required field is missing"),
    ("cidr-empty", ingress_peer('ipBlock: {cidr: ""}'), f"{F}.ipBlock.cidr", "required field is missing"),
    ("cidr-invalid", ingress_peer("ipBlock: {cidr: 10.0.0.0}"), f"{F}.ipBlock.cidr",
     "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
    ("cidr-host-bits", ingress_peer("ipBlock: {cidr: 10.1.2.3/8}"), f"{F}.ipBlock.cidr",
     "must not have bits set beyond the prefix length (did you mean 10.0.0.0/8?)"),
    ("cidr-leading-zeros", ingress_peer("ipBlock: {cidr: 10.001.0.0/16}"), f"{F}.ipBlock.cidr",
     "must not have leading 0s in IP or prefix length"),
    ("cidr-ipv4-mapped", ingress_peer('ipBlock: {cidr: "::ffff:10.0.0.0/104"}'), f"{F}.ipBlock.cidr",
     "must not have an IPv4-mapped IPv6 address"),
    ("except-equal", ingress_peer("ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}"), f"{F}.ipBlock.except[0]",
     "must be a strict subset of `cidr`"),
    ("except-outside", ingress_peer("ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}"), f"{F}.ipBlock.except[0]",
     "must be a strict subset of `cidr`"),
    ("except-other-family", ingress_peer('ipBlock: {cidr: 10.0.0.0/8, except: ["fd00::/8"]}'), f"{F}.ipBlock.except[0]",
     "must be a strict subset of `cidr`"),
    ("except-invalid", ingress_peer("ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/33]}"), f"{F}.ipBlock.except[0]",
     "must be a valid CIDR value"),
    ("except-host-bits", ingress_peer("ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.1/16]}"), f"{F}.ipBlock.except[0]",
     "must not have bits set beyond the prefix length"),
    # policyTypes
    ("policy-type-value", "podSelector: {}\npolicyTypes:\n- Ingress\n- egress  #!",
     "spec.policyTypes[1]", 'unsupported value "egress": must be one of "Ingress", "Egress"'),
    ("policy-types-three", "podSelector: {}\npolicyTypes: [Ingress, Egress, Ingress]  #!",
     "spec.policyTypes", "may not specify more than two policyTypes"),
    ("unknown-field", "podSelector: {}\ningress:\n- fromm: []  #!",
     "spec.ingress[0].fromm", 'unknown field "fromm" (did you mean "from"?)'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_network_policy_is_rejected_with_location(body: str, field: str, fragment: str) -> None:
    expect_one_issue(document(body), field, fragment)


def test_metadata_is_validated() -> None:
    text = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata:\n  name: np.\n  namespace: ns\nspec: {podSelector: {}}\n"
    )
    with pytest.raises(LoadError) as err:
        load_policies(parse_text(text, "bad.yaml"))
    [issue] = err.value.issues
    assert (issue.field, issue.line) == ("metadata.name", 4)
    assert "a lowercase RFC 1123 subdomain" in issue.message


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
