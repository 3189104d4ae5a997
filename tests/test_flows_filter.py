"""hubble observe filter flags: every flag, with and without --not, from/to variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from ciliary.flows.codec import read_flows
from ciliary.flows.filter import (
    FilterFlags,
    build_flow_filters,
    matcher_from_flags,
    parse_event_type,
)
from ciliary.flows.flowfilter import FilterError, FlowFilter
from ciliary.flows.labelsel import LabelSelectorError, compile_selector, parse_labels
from ciliary.flows.matcher import FlowMatcher
from ciliary.flows.model import Flow
from ciliary.flows.predicates import request_uri_path
from ciliary.workflows.observe import parse_observe_args, raw_filters

DATA = Path(__file__).parent / "data" / "flows"
SAMPLES = DATA / "hand-written-samples.jsonl"
FLOWS = list(read_flows(SAMPLES))
ALL = frozenset(range(1, len(FLOWS) + 1))
assert len(FLOWS) == 41


def matching(*args: str) -> set[int]:
    """1-based sample line numbers that `hubble observe <args>` keeps."""
    allow, deny = raw_filters(parse_observe_args([str(SAMPLES), *args]).options)
    m = FlowMatcher(allow, deny)
    return {i for i, f in enumerate(FLOWS, 1) if m(f)}


W = {4, 5, 16, 17, 30, 41}  # identity world on either side
CART = {6, 7, 8, 9, 10, 11, 12, 24, 25, 33, 35, 37, 38}
FROM_CART = {10, 11, 24, 33, 37}
TO_CART = {6, 7, 8, 9, 12, 25, 35, 38}
DNS_SERVER = {1, 2, 3, 37, 38, 39, 40}
WORKER_B2 = {8, 9, 10, 16, 17, 18, 24, 25, 33, 36, 37, 38}
REPLIES = {3, 10, 11, 22, 25, 27, 38, 40}
SYN = {4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 17, 18, 19, 20, 29, 30, 31, 32, 41}
INGRESS = {8, 9, 10, 13, 14, 15, 18, 19, 20, 21, 22, 23, 29, 30, 32, 36}
TO_WORLD_LABEL = {4, 5, 16, 17, 31, 33, 41}

CASES: list[tuple[list[str], set[int]]] = [
    # verdicts and drop reasons
    (["--verdict", "DROPPED"], {13, 14, 15, 16, 17, 23, 28, 36}),
    (["--verdict", "AUDIT", "--verdict", "REDIRECTED"], {1, 4, 18, 19}),
    (["--drop-reason-desc", "POLICY_DENY"], {16, 17}),
    (["--drop-reason-desc", "POLICY_DENIED"], {13, 14, 15}),
    # namespaces and pods (prefix match, `ns/` form, default namespace)
    (["--namespace", "payments"], {13, 14, 15, 24, 25}),
    (["-n", "payments"], {13, 14, 15, 24, 25}),
    (["--from-namespace", "payments"], {25}),
    (["--to-namespace", "payments"], {13, 14, 15, 24}),
    (["--pod", "shop/cart"], CART),
    (["--pod", "cart", "--namespace", "shop"], CART),
    (["--from-pod", "shop/cart"], FROM_CART),
    (["--to-pod", "shop/cart"], TO_CART),
    (["--pod", "kafka-0"], set()),  # no namespace means "default"
    (["--pod", "streaming/kafka"], {26, 27, 28}),
    (["--pod", "shop/cart-7b5c9d6f4-q8w2m"], CART),
    # labels (k8s selector syntax over Cilium labels)
    (["--label", "app.kubernetes.io/name=payments-api"], {13, 14, 15, 24, 25}),
    (["-l", "k8s:app.kubernetes.io/name in (inventory)"], {18, 36}),
    (["--from-label", "reserved:world"], {30}),
    (["--to-label", "reserved:world"], TO_WORLD_LABEL),
    (["--label", "reserved:world"], TO_WORLD_LABEL | {30}),
    (["--to-label", "cidr:192.0.0.0/16"], {33}),  # CIDR-aware label matching
    (["--label", "reserved:host", "--label", "reserved:remote-node"], {29, 32}),
    (
        ["--from-label", "k8s:app.kubernetes.io/name notin (frontend,cart,catalog,coredns)"],
        {3, 13, 14, 15, 16, 17, 25, 26, 27, 28, 29, 30, 31, 32, 36, 38, 40},  # coredns: no such key
    ),
    (["--node-label", "topology.kubernetes.io/zone=us-east-1b"], WORKER_B2),
    # FQDNs (`*` crosses dots), IPs and CIDRs
    (["--fqdn", "api.stripe.com"], {4, 5}),
    (["--fqdn", "API.Stripe.com."], {4, 5}),
    (["--to-fqdn", "*.com"], {4, 5, 41}),
    (["--to-fqdn", "images.*"], {41}),
    (["--from-fqdn", "*.com"], set()),
    (["--ip", "10.42.2.9"], DNS_SERVER),
    (["--from-ip", "10.42.2.9"], {3, 38, 40}),
    (["--to-ip", "10.42.2.9"], {1, 2, 37, 39}),
    (["--to-ip", "192.0.2.0/24"], {33}),
    (["--ip", "192.0.2.0/24"], {30, 33}),
    (["--ip", "fe80::/10"], {36}),
    (["--snat-ip", "10.0.0.1"], set()),
    (["--ipv6"], {36}),
    (["-6"], {36}),
    (["--ipv4"], ALL - {36}),
    (["--ip-version", "v6"], {36}),
    # ports and protocols
    (["--port", "53"], DNS_SERVER),
    (["--from-port", "53"], {3, 38, 40}),
    (["--to-port", "53"], {1, 2, 37, 39}),
    (["--to-port", "8080"], {6, 7, 8, 9, 19, 20, 21, 23, 29, 30, 32, 34, 35}),
    (["--from-port", "0"], {34, 35}),
    (["--protocol", "udp"], {1, 2, 3, 33, 37, 38, 39, 40}),
    (["--protocol", "ICMP"], {12, 36}),
    (["--protocol", "icmpv6"], {36}),
    (["--protocol", "http"], {21, 22, 23, 24, 25}),
    (["--protocol", "dns", "--protocol", "kafka"], {2, 3, 26, 27, 28, 37, 38, 39, 40}),
    (["--tcp-flags", "syn"], SYN),
    (["--tcp-flags", "syn,ack"], {10}),
    (["--tcp-flags", "fin", "--tcp-flags", "rst"], {11}),
    # event types and sub-types
    (["--type", "trace"], {5, 7, 9, 10, 11, 12, 20, 29, 32, 41}),
    (["-t", "trace:to-endpoint"], {9, 11, 29, 32}),
    (["--type", "trace:to-overlay"], {7, 10, 12}),
    (["--type", "drop"], {14, 15, 17, 36}),
    (["--type", "drop:133"], {14, 15}),
    (["--type", "policy-verdict"], {1, 4, 6, 8, 13, 16, 18, 19, 30, 31, 33}),
    (["--type", "l7"], {2, 3, 21, 22, 23, 24, 25, 26, 27, 28, 37, 38, 39, 40}),
    (["--type", "trace-sock"], {34, 35}),
    (["--type", "7:2"], {35}),
    # HTTP
    (["--http-status", "4+"], {25}),
    (["--http-status", "200"], {22}),
    (["--http-status", "20+"], {22}),
    (["--http-method", "delete"], {23}),
    (["--http-method", "GET"], {21, 22}),
    (["--http-path", "^/api/products$"], {21, 22}),
    (["--http-path", r"/api/products/\d+"], {23}),
    (["--http-url", "payments-api"], {24, 25}),
    (["--http-url", "category=shoes&page"], {21, 22}),
    (["--http-header", "Content-Type:application/problem+json"], {25}),
    (["--type", "l7", "--http-method", "post"], {24, 25}),
    # identities, workloads, clusters, services
    (["--identity", "world"], W),
    (["--identity", "16777217"], {33}),
    (["--from-identity", "1"], {29}),
    (["--from-identity", "host"], {29}),
    (["--to-identity", "kube-apiserver"], {31}),
    (["--workload", "Deployment/cart"], CART),
    (["--workload", "cart"], CART),
    (["--from-workload", "CronJob/"], {13, 14, 15, 16, 17}),
    (["--to-workload", "kafka"], {26, 28}),
    (["--cluster", "prod-east"], ALL - {36}),
    (["--from-cluster", "prod-east"], ALL - {29, 30, 32, 36}),
    (["--to-cluster", "prod-east"], ALL - {4, 5, 16, 17, 31, 33, 34, 36, 41}),
    (["--cluster", "other"], set()),
    (["--service", "shop/cart"], {34}),
    (["--to-service", "shop/"], {34}),
    (["--to-service", "cart"], set()),  # "default/cart"
    (["--from-service", "shop/cart"], set()),
    # direction, node, ids, interface, encryption, reply
    (["--traffic-direction", "ingress"], INGRESS),
    (["--traffic-direction", "EGRESS"], ALL - INGRESS - {34, 35}),
    (["--node-name", "worker-b2"], WORKER_B2),
    (["--node-name", "prod-east/worker-b*"], WORKER_B2),
    (["--node-name", "prod-*/*"], ALL),
    (["--node-name", "other/*"], set()),
    (["--uuid", "ae4bff34-cbb1-4618-8f4e-6ca45622ec1a"], {1}),
    (["--trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"], {21, 22}),
    (["--interface", "cilium_vxlan"], {7, 10, 12}),
    (["--encrypted"], set()),
    (["--unencrypted"], ALL),
    (["--reply", "true"], REPLIES),
    (["--reply", "false"], ALL - REPLIES - {34, 35}),  # drops without is_reply count as false
    # combinations: values ORed within a flag, flags ANDed
    (["--pod", "shop/frontend", "--verdict", "DROPPED"], {23}),
    (["--http-method", "get", "--http-method", "put", "--to-namespace", "shop"], {21, 22}),
    (["--namespace", "payments", "--verdict", "DROPPED"], {13, 14, 15}),
    (["--to-namespace", "payments", "--to-namespace", "streaming"], {13, 14, 15, 24, 26, 28}),
    (["--from-pod", "shop/frontend", "--to-port", "8080", "--type", "trace"], {7, 9, 20}),
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_flag(args: list[str], expected: set[int]) -> None:
    assert matching(*args) == expected


NEGATABLE = [
    (args, expected)
    for args, expected in CASES
    # one filter flag: `--not` before it gives the complement
    if sum(a.startswith("-") for a in args) == 1
]


@pytest.mark.parametrize(("args", "expected"), NEGATABLE, ids=[" ".join(a) for a, _ in NEGATABLE])
def test_not_flag(args: list[str], expected: set[int]) -> None:
    assert matching("--not", *args) == ALL - expected


def test_not_applies_to_the_next_flag_only() -> None:
    # flows in namespace payments that are not DROPPED
    assert matching("--namespace", "payments", "--not", "--verdict", "DROPPED") == {24, 25}
    # --not flags collect into one denylist filter: excluded iff ALL negated flags match
    assert matching("--not", "--namespace", "payments", "--not", "--verdict", "DROPPED") == (
        ALL - {13, 14, 15}
    )
    # hubble's own example: only flows that are PUT/GET *and* go to foo are removed
    assert (
        matching(
            "--not",
            "--http-method",
            "put",
            "--not",
            "--http-method",
            "get",
            "--not",
            "--to-namespace",
            "foo",
        )
        == ALL
    )


def test_raw_filters_like_print_raw_filters() -> None:
    allow, deny = raw_filters(
        parse_observe_args(["--pod", "shop/frontend", "--verdict", "DROPPED"]).options
    )
    assert [f.to_dict() for f in allow] == [
        {"source_pod": ["shop/frontend"], "verdict": ["DROPPED"]},
        {"destination_pod": ["shop/frontend"], "verdict": ["DROPPED"]},
    ]
    assert deny == []
    allow, deny = raw_filters(parse_observe_args(["--not", "--namespace", "kube-system"]).options)
    assert allow == []
    assert [f.to_json() for f in deny] == [
        '{"source_pod":["kube-system/"]}',
        '{"destination_pod":["kube-system/"]}',
    ]
    # identical halves collapse into one filter
    assert len(build_flow_filters(FilterFlags(from_pod=["shop/x"], verdict=["DROPPED"]))) == 1
    # namespaces are applied to pods and services at the end
    (left, right) = build_flow_filters(FilterFlags(namespace=["a", "b"], pod=["x"]))
    assert left.source_pod == ["a/x", "b/x"]
    assert right.destination_pod == ["a/x", "b/x"]
    ff = build_flow_filters(FilterFlags(to_namespace=["x"], from_namespace=["y"]))
    assert [f.to_dict() for f in ff] == [{"source_pod": ["y/"], "destination_pod": ["x/"]}]
    with pytest.raises(FilterError, match="cannot be combined"):
        build_flow_filters(FilterFlags(to_namespace=["x"], namespace=["y"]))


def test_allowlist_and_denylist_json() -> None:
    assert matching("--allowlist", '{"source_pod":["shop/frontend"],"verdict":["DROPPED"]}') == {23}
    assert matching("--denylist", '{"verdict":["FORWARDED"]}') == ALL - {
        i for i, f in enumerate(FLOWS, 1) if f.verdict == "FORWARDED"
    }
    # an empty filter matches everything: denylisting it removes everything
    assert matching("--denylist", "{}") == set()
    # raw fields without a CLI flag, camelCase accepted, enum numbers accepted
    assert matching("--allowlist", '{"dnsQuery":["^api\\\\."]}') == {2, 3}
    assert matching("--allowlist", '{"verdict":[2],"traffic_direction":["EGRESS"]}') == {
        16,
        17,
        28,
    }
    filters = FlowFilter.from_json('{"verdict":["DROPPED"]} {"uuid":["x"]}')
    assert [f.to_dict() for f in filters] == [{"verdict": ["DROPPED"]}, {"uuid": ["x"]}]
    with pytest.raises(FilterError):
        FlowFilter.from_json('{"nope":[1]}')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "10.0.0.1", "--from-ip", "10.0.0.2"], "cannot be combined"),
        (["--namespace", "a", "--from-pod", "a/b"], "cannot be combined"),
        (["--port", "1", "--to-port", "2"], "cannot be combined"),
        (["--label", "a", "--from-label", "b"], "cannot be combined"),
        (["--identity", "1", "--to-identity", "2"], "cannot be combined"),
        (["--encrypted", "--unencrypted"], "cannot be combined"),
        (["--pod", "x", "--fqdn", "a.com"], "cannot be combined"),
        (["--namespace", "a", "--pod", "b/x"], 'namespace conflict: "a" does not contain "b/x"'),
        (["--verdict", "ALLOWED"], "invalid --verdict value: ALLOWED"),
        (["--drop-reason-desc", "NOPE"], "invalid --drop-reason-desc value"),
        (["--to-port", "70000"], "invalid port"),
        (["--to-ip", "10.0.0.0/33"], "invalid CIDR"),
        (["--to-ip", "10.0.0.256"], "invalid IP address"),
        (["--protocol", "quic"], "unknown protocol"),
        (["--tcp-flags", "syn,bogus"], "unknown tcp flag: bogus"),
        (["--type", "nope"], "unable to parse type"),
        (["--type", "trace:nowhere"], "unable to parse event sub-type"),
        (["--type", "trace", "--http-method", "get"], "requires the event type filter"),
        (["--http-status", "600"], "invalid status code prefix"),
        (["--http-header", "novalue"], "expected name:value"),
        (["--http-path", "("], "invalid http path filter"),
        (["--traffic-direction", "sideways"], "invalid traffic direction"),
        (["--identity", "nobody"], "invalid security identity"),
        (["--ip-trace-id", "0"], "must be greater than 0"),
        (["--cluster", ""], "name must not be empty"),
        (["--fqdn", "a/b"], "invalid rune"),
        (["--node-name", "a/b/c"], "too many slashes"),
        (["--label", "a in ()"], "values set can't be empty"),
        (["--label", "a=b=c"], "unable to parse"),
        (["--cel-expression", "true"], "not supported"),
        (["--not", "--not", "--verdict", "DROPPED"], "consecutive --not statements"),
        (["--verdict", "DROPPED", "--not"], "trailing --not"),
    ],
)
def test_invalid_filters(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        matching(*args)


def test_event_type_parsing() -> None:
    assert parse_event_type("trace:to-endpoint") == {
        "type": 4,
        "match_sub_type": True,
        "sub_type": 0,
    }
    assert parse_event_type("agent:policy-updated") == {
        "type": 130,
        "match_sub_type": True,
        "sub_type": 5,
    }
    assert parse_event_type("drop") == {"type": 1}


def _flow(**fields: object) -> Flow:
    base: dict[str, object] = {"time": "2026-01-01T00:00:00Z", "event_type": {"type": 4}}
    base.update(fields)
    return Flow.build(base)


def test_snat_ip_and_ip_trace_id() -> None:
    f = _flow(IP={"source": "10.0.0.1", "source_xlated": "192.0.2.7", "destination": "1.1.1.1"})
    assert matcher_from_flags(FilterFlags(snat_ip=["192.0.2.0/24"]))(f)
    assert not matcher_from_flags(FilterFlags(snat_ip=["192.0.2.8"]))(f)
    assert not matcher_from_flags(None, FilterFlags(snat_ip=["192.0.2.7"]))(f)
    t = _flow(ip_trace_id={"trace_id": "42", "ip_option_type": 136})
    assert matcher_from_flags(FilterFlags(ip_trace_id=["42"]))(t)
    assert not matcher_from_flags(FilterFlags(ip_trace_id=["43"]))(t)


def test_ipv4_mapped_addresses_match_ipv4_cidrs() -> None:
    f = _flow(IP={"source": "::ffff:10.1.2.3", "destination": "10.9.9.9"})
    assert matcher_from_flags(FilterFlags(from_ip=["10.1.0.0/16"]))(f)
    assert not matcher_from_flags(FilterFlags(from_ip=["10.1.2.3"]))(f)  # exact is textual


def test_node_name_without_cluster_is_default_cluster() -> None:
    f = _flow(node_name="kind-worker")
    assert matcher_from_flags(FilterFlags(node_name=["default/kind-*"]))(f)
    assert matcher_from_flags(FilterFlags(node_name=["kind-worker"]))(f)
    assert not matcher_from_flags(FilterFlags(node_name=["prod/kind-worker"]))(f)


def test_service_namespace_prefix_and_identity_zero() -> None:
    f = _flow(destination={}, destination_service={"name": "cart-v2", "namespace": "shop"})
    assert matcher_from_flags(FilterFlags(to_service=["shop/cart"]))(f)
    assert matcher_from_flags(FilterFlags(to_identity=["0"]))(f)  # present endpoint, id 0
    g = _flow()
    assert not matcher_from_flags(FilterFlags(to_identity=["0"]))(g)  # no endpoint at all


def test_label_selectors() -> None:
    labels = parse_labels(
        [
            "k8s:app=web",
            "k8s:tier=front",
            "container:app=other",
            "reserved:world",
            "cidr:10.1.2.0/24",
        ]
    )
    assert compile_selector("app=web")(labels)  # any source: the first label with the key
    assert compile_selector("k8s:app=web")(labels)
    assert not compile_selector("container:app=web")(labels)
    assert compile_selector("container:app=other")(labels)
    assert compile_selector("app in (web, api), tier")(labels)
    assert not compile_selector("app in (web), !tier")(labels)
    assert compile_selector("app!=api")(labels)
    assert compile_selector("missing!=x")(labels)
    assert not compile_selector("missing")(labels)
    assert compile_selector("reserved:world")(labels)
    assert compile_selector("cidr:10.0.0.0/8")(labels)
    assert not compile_selector("cidr:10.1.2.0/25")(labels)
    assert compile_selector("")(labels)
    assert compile_selector("prio>3")(parse_labels(["k8s:prio=5"]))
    assert not compile_selector("prio<3")(parse_labels(["k8s:prio=5"]))
    with pytest.raises(LabelSelectorError):
        compile_selector("app in (a")


def test_request_uri_path() -> None:
    assert request_uri_path("http://h:80/a/b?x=1") == "/a/b"
    assert request_uri_path("/a%2Fb") == "/a/b"
    assert request_uri_path("http://h") == ""
    assert request_uri_path("relative/path") is None
    assert request_uri_path("/bad%zz") is None
