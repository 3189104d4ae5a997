"""`ciliary lint`: every check, one policy set that shows it and one that does not.

The cluster is examples/lint/cluster.yaml (see its README); policies are written to a
temporary file so findings carry real files and lines.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ciliary.policy.config import AgentConfig
from ciliary.workflows.engine import build_engine
from ciliary.workflows.lint import Finding, LintOptions, LintResult, Severity, lint
from ciliary.workflows.lint.flowfacts import read_facts

DATA = Path(__file__).parent.parent / "examples" / "lint"
CLUSTER = DATA / "cluster.yaml"
FLOWS = DATA / "flows.jsonl"

DNS_RULE = """
    - toEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: kube-system
            k8s-app: kube-dns
      toPorts:
        - ports:
            - port: "53"
              protocol: UDP
          rules:
            dns:
              - matchPattern: "*"
"""


def cnp(name: str, ns: str, spec: str) -> str:
    return f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"


def ccnp(name: str, spec: str) -> str:
    return f"apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"


def run(tmp_path: Path, *docs: str, config: AgentConfig | None = None, flows: bool = False,
        select: list[str] | None = None, options: LintOptions | None = None) -> LintResult:
    f = tmp_path / "policies.yaml"
    f.write_text("---\n".join(docs))
    engine = build_engine(CLUSTER, [f], config or AgentConfig())
    facts = read_facts([FLOWS]) if flows else None
    return lint(engine, facts=facts, select=select, options=options)


def of(result: LintResult, check: str) -> list[Finding]:
    return [f for f in result.findings if f.id == check]


def one(result: LintResult, check: str) -> Finding:
    found = of(result, check)
    assert len(found) == 1, [f.message for f in result.findings]
    return found[0]


# -- CIL001: toFQDNs without a DNS rule (pitfall 1) ---------------------------------------

FQDN_EGRESS = """
    - toFQDNs:
        - matchName: api.stripe.com
      toPorts:
        - ports:
            - port: "443"
              protocol: TCP
"""


def test_cil001_fqdn_without_any_dns_rule(tmp_path: Path) -> None:
    r = run(tmp_path, cnp("x", "payments", "endpointSelector:\n  matchLabels:\n    app: pg-gateway\negress:" + FQDN_EGRESS), select=["CIL001"])
    f = one(r, "CIL001")
    assert f.severity is Severity.error
    assert f.field == "spec.egress[0].toFQDNs[0]"
    assert f.line == 12 and f.file.endswith("policies.yaml")
    assert "dropped by the pods' egress policy" in f.message and "payments/pg-gateway-1" in f.message
    assert f.endpoints == ("payments/pg-gateway-1",)


def test_cil001_dns_allowed_but_not_through_the_proxy(tmp_path: Path) -> None:
    l4_dns = DNS_RULE.replace("          rules:\n            dns:\n              - matchPattern: \"*\"\n", "")
    r = run(tmp_path, cnp("x", "payments", "endpointSelector: {}\negress:" + l4_dns + FQDN_EGRESS), select=["CIL001"])
    f = one(r, "CIL001")
    assert "not sent to the DNS proxy" in f.message
    assert f.field == "spec.egress[1].toFQDNs[0]"


def test_cil001_dns_rule_does_not_cover_the_name(tmp_path: Path) -> None:
    narrow = DNS_RULE.replace('matchPattern: "*"', "matchName: api.github.com")
    r = run(tmp_path, cnp("x", "payments", "endpointSelector: {}\negress:" + narrow + FQDN_EGRESS), select=["CIL001"])
    f = one(r, "CIL001")
    assert "does not allow api.stripe.com" in f.message and "REFUSED" in f.message
    assert "matchName: api.stripe.com" in f.hint


def test_cil001_pattern_checked_by_a_name_it_matches(tmp_path: Path) -> None:
    narrow = DNS_RULE.replace('matchPattern: "*"', 'matchPattern: "*.internal.example.com"')
    egress = FQDN_EGRESS.replace("matchName: api.stripe.com", 'matchPattern: "*.stripe.com"')
    r = run(tmp_path, cnp("x", "payments", "endpointSelector: {}\negress:" + narrow + egress), select=["CIL001"])
    assert "x.stripe.com" in one(r, "CIL001").message


def test_cil001_negative_dns_rule_covers_the_names(tmp_path: Path) -> None:
    r = run(tmp_path, cnp("x", "payments", "endpointSelector: {}\negress:" + DNS_RULE + FQDN_EGRESS), select=["CIL001"])
    assert of(r, "CIL001") == []


# -- CIL002: rotating answers (pitfall 2) ---------------------------------------------------

ROTATING = cnp("cdn", "shop", "endpointSelector:\n  matchLabels:\n    app: frontend\negress:" + DNS_RULE + """
    - toFQDNs:
        - matchName: cdn.example.net
        - matchName: api.stable.example
      toPorts:
        - ports:
            - port: "443"
              protocol: TCP
""")


def test_cil002_rotating_name_with_matchname_and_no_grace_period(tmp_path: Path) -> None:
    r = run(tmp_path, ROTATING, flows=True, select=["CIL002"])
    f = one(r, "CIL002")
    assert f.severity is Severity.warning
    assert f.field == "spec.egress[1].toFQDNs[0]"
    assert "cdn.example.net answered with 4 addresses in 3 answer(s)" in f.message and "TTL down to 20s" in f.message
    assert 'matchPattern: "*.example.net"' in f.hint and "tofqdns-idle-connection-grace-period" in f.hint


def test_cil002_negative_pattern_and_grace_period(tmp_path: Path) -> None:
    policy = ROTATING.replace("- matchName: api.stable.example", '- matchPattern: "*.example.net"')
    r = run(tmp_path, policy, flows=True, select=["CIL002"],
            config=AgentConfig().with_overrides(tofqdns_idle_connection_grace_period=300.0))
    assert of(r, "CIL002") == []


def test_cil002_grace_period_alone_is_not_enough_without_a_pattern(tmp_path: Path) -> None:
    r = run(tmp_path, ROTATING, flows=True, select=["CIL002"],
            config=AgentConfig().with_overrides(tofqdns_idle_connection_grace_period=300.0))
    f = one(r, "CIL002")
    assert "grace-period is 0" not in f.message and "matchPattern" in f.hint


def test_cil002_needs_flows(tmp_path: Path) -> None:
    r = run(tmp_path, ROTATING, select=["CIL002"])
    assert of(r, "CIL002") == []
    assert any("no --flows" in n for n in r.notes)


# -- CIL003: system namespaces (pitfall 3) --------------------------------------------------

def test_cil003_clusterwide_default_deny_sweeps_system_namespaces(tmp_path: Path) -> None:
    r = run(tmp_path, ccnp("lockdown", "endpointSelector: {}\ningress:\n  - fromEntities: [cluster]"), select=["CIL003"])
    f = one(r, "CIL003")
    assert f.severity is Severity.error
    assert "kube-system" in f.message and "monitoring" in f.message and "along with" in f.message


def test_cil003_policy_inside_a_system_namespace_is_a_warning(tmp_path: Path) -> None:
    r = run(tmp_path, cnp("dns", "kube-system", "endpointSelector: {}\ningress:\n  - fromEntities: [cluster]"), select=["CIL003"])
    assert one(r, "CIL003").severity is Severity.warning


def test_cil003_host_policy(tmp_path: Path) -> None:
    host = ccnp("host", "nodeSelector:\n  matchLabels:\n    node-role.kubernetes.io/control-plane: \"\"\ningress:\n  - fromEntities: [cluster]")
    f = one(run(tmp_path, host, select=["CIL003"]), "CIL003")
    assert "host policy" in f.message and "kube-system/kube-apiserver-node-1" in f.message


def test_cil003_negative_system_namespaces_excluded(tmp_path: Path) -> None:
    spec = """
        endpointSelector:
          matchExpressions:
            - key: k8s:io.kubernetes.pod.namespace
              operator: NotIn
              values: [kube-system, monitoring, ingress-nginx]
        ingress:
          - fromEntities: [cluster]
    """
    assert of(run(tmp_path, ccnp("lockdown", spec), select=["CIL003"]), "CIL003") == []


def test_cil003_namespace_list_is_configurable(tmp_path: Path) -> None:
    policy = cnp("jobs", "batch", "endpointSelector: {}\ningress:\n  - fromEntities: [cluster]")
    assert of(run(tmp_path, policy, select=["CIL003"]), "CIL003") == []
    r = run(tmp_path, policy, select=["CIL003"], options=LintOptions(system_namespaces=("batch",)))
    assert "batch" in one(r, "CIL003").message


# -- CIL004: probes (pitfall 4) -------------------------------------------------------------

BACKEND_RULES = """
    endpointSelector:
      matchLabels:
        app: backend
    ingress:
      - fromEndpoints:
          - matchLabels:
              app: frontend
        toPorts:
          - ports:
              - port: "8080"
                protocol: TCP
"""


BACKEND_INGRESS = cnp("be", "shop", BACKEND_RULES)


def test_cil004_allow_localhost_policy_blocks_declared_probes(tmp_path: Path) -> None:
    r = run(tmp_path, BACKEND_INGRESS, select=["CIL004"], config=AgentConfig().with_overrides(allow_localhost="policy"))
    f = one(r, "CIL004")
    assert f.severity is Severity.error
    assert "shop/backend-1" in f.message and "8080/TCP" in f.message and "allow-localhost" in f.message
    assert "fromEntities: [host]" in f.hint


def test_cil004_negative_host_entity_allowed(tmp_path: Path) -> None:
    policy = BACKEND_INGRESS + """    - fromEntities: [host]
      toPorts:
        - ports:
            - port: "8080"
              protocol: TCP
"""
    r = run(tmp_path, policy, select=["CIL004"], config=AgentConfig().with_overrides(allow_localhost="policy"))
    assert of(r, "CIL004") == []


def test_cil004_negative_default_allow_localhost(tmp_path: Path) -> None:
    assert of(run(tmp_path, BACKEND_INGRESS, select=["CIL004"]), "CIL004") == []


def test_cil004_pods_without_declared_probes_are_a_warning(tmp_path: Path) -> None:
    policy = BACKEND_INGRESS.replace("app: backend", "app: order-api")
    r = run(tmp_path, policy, select=["CIL004"], config=AgentConfig().with_overrides(allow_localhost="policy"))
    f = one(r, "CIL004")
    assert f.severity is Severity.warning and "none declared" in f.message


def test_cil004_host_policy_egress_blocks_probes(tmp_path: Path) -> None:
    host = ccnp("host-egress", "nodeSelector: {}\negress:\n  - toEntities: [kube-apiserver]")
    r = run(tmp_path, host, select=["CIL004"], config=AgentConfig().with_overrides(enable_host_firewall=True))
    declared = [f for f in of(r, "CIL004") if f.severity is Severity.error]
    assert len(declared) == 1
    assert "host policy's egress" in declared[0].message and "shop/frontend-1" in declared[0].message
    assert "toEntities: [cluster]" in declared[0].hint


# -- CIL005: selectors that select nothing (pitfall 6) --------------------------------------

def test_cil005_endpoint_selector_typo_suggests_the_value(tmp_path: Path) -> None:
    r = run(tmp_path, BACKEND_INGRESS.replace("app: backend", "app: backnd"), select=["CIL005"])
    f = one(r, "CIL005")
    assert f.severity is Severity.error and f.field == "spec.endpointSelector"
    assert "did you mean app=backend?" in f.message


def test_cil005_peer_key_typo_suggests_the_key(tmp_path: Path) -> None:
    r = run(tmp_path, BACKEND_INGRESS.replace("            app: frontend", "            ap: frontend"), select=["CIL005"])
    f = one(r, "CIL005")
    assert f.field == "spec.ingress[0].fromEndpoints[0]" and "did you mean app?" in f.message


def test_cil005_namespace_typo(tmp_path: Path) -> None:
    policy = BACKEND_INGRESS.replace("            app: frontend", "            k8s:io.kubernetes.pod.namespace: monitorng")
    f = one(run(tmp_path, policy, select=["CIL005"]), "CIL005")
    assert "there is no namespace monitorng; did you mean monitoring?" in f.message


def test_cil005_no_near_miss_is_a_warning(tmp_path: Path) -> None:
    f = one(run(tmp_path, BACKEND_INGRESS.replace("app: backend", "tier: gold"), select=["CIL005"]), "CIL005")
    assert f.severity is Severity.warning and "no pod in namespace shop has a label tier" in f.message


def test_cil005_no_single_endpoint_has_all_labels(tmp_path: Path) -> None:
    spec = "endpointSelector:\n  matchLabels:\n    app: backend\n    k8s:io.kubernetes.pod.namespace: payments\ningress:\n  - fromEntities: [cluster]"
    f = one(run(tmp_path, ccnp("mixed", spec), select=["CIL005"]), "CIL005")
    assert "no single pod has all of" in f.message and "the closest lacks" in f.message


def test_cil005_negative(tmp_path: Path) -> None:
    assert of(run(tmp_path, BACKEND_INGRESS, select=["CIL005"]), "CIL005") == []


# -- CIL006: {} versus [] (pitfall 6) --------------------------------------------------------

def test_cil006_empty_section_list(tmp_path: Path) -> None:
    f = one(run(tmp_path, cnp("x", "shop", "endpointSelector: {}\ningress: []\negress:\n  - toEntities: [all]"), select=["CIL006"]), "CIL006")
    assert f.field == "spec.ingress" and "creates no rule" in f.message and "ingress: [{}]" in f.hint


def test_cil006_empty_peer_list_with_ports(tmp_path: Path) -> None:
    spec = 'endpointSelector: {}\ningress:\n  - fromEndpoints: []\n    toPorts:\n      - ports:\n          - port: "80"'
    f = one(run(tmp_path, cnp("x", "shop", spec), select=["CIL006"]), "CIL006")
    assert f.severity is Severity.warning and f.field == "spec.ingress[0].fromEndpoints"
    assert "older Cilium releases" in f.message


def test_cil006_empty_selector_in_list_selects_the_namespace(tmp_path: Path) -> None:
    f = one(run(tmp_path, cnp("x", "shop", "endpointSelector: {}\ningress:\n  - fromEndpoints:\n      - {}"), select=["CIL006"]), "CIL006")
    assert f.severity is Severity.info and "every pod in namespace shop" in f.message


def test_cil006_knp_empty_rule_allows_all(tmp_path: Path) -> None:
    knp = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: k\n  namespace: shop\nspec:\n  podSelector: {}\n  ingress:\n    - {}\n"
    assert "allows all ingress" in one(run(tmp_path, knp, select=["CIL006"]), "CIL006").message


def test_cil006_negative_explicit_default_deny(tmp_path: Path) -> None:
    r = run(tmp_path, cnp("x", "shop", "endpointSelector: {}\ningress:\n  - fromEndpoints: []\negress:\n  - {}"), select=["CIL006"])
    assert of(r, "CIL006") == []


# -- CIL007, CIL008: L7 (pitfall 7) ----------------------------------------------------------

def l7_on(selector: str, port: str = "8080") -> str:
    return cnp("l7", "shop", f"""
        endpointSelector: {selector}
        ingress:
          - fromEndpoints:
              - matchLabels:
                  app: frontend
            toPorts:
              - ports:
                  - port: "{port}"
                    protocol: TCP
                rules:
                  http:
                    - method: GET
    """)


def test_cil007_l7_on_every_pod_of_a_namespace(tmp_path: Path) -> None:
    f = one(run(tmp_path, l7_on("{}"), select=["CIL007"]), "CIL007")
    assert "5 of 5 pods (100%) of namespace shop" in f.message and f.field == "spec.ingress[0].toPorts[0].rules"


def test_cil007_negative_one_boundary(tmp_path: Path) -> None:
    r = run(tmp_path, l7_on("{matchLabels: {app: order-api}}"), select=["CIL007"])
    assert of(r, "CIL007") == []
    r = run(tmp_path, l7_on("{matchLabels: {app: order-api}}"), select=["CIL007"], options=LintOptions(l7_share=0.1))
    assert "1 of 5 pods" in one(r, "CIL007").message


def test_cil008_http_rules_on_postgres(tmp_path: Path) -> None:
    f = one(run(tmp_path, l7_on("{matchLabels: {app: db}}", "5432"), select=["CIL008"]), "CIL008")
    assert "PostgreSQL" in f.message


def test_cil008_http_rules_on_tls_without_termination(tmp_path: Path) -> None:
    policy = l7_on("{matchLabels: {app: pg-gateway}}", "8443").replace("namespace: shop", "namespace: payments")
    f = one(run(tmp_path, policy, select=["CIL008"]), "CIL008")
    assert "8443 (https)" in f.message and "terminatingTLS" in f.hint


def test_cil008_negative_http_port(tmp_path: Path) -> None:
    assert of(run(tmp_path, l7_on("{matchLabels: {app: order-api}}"), select=["CIL008"]), "CIL008") == []


# -- CIL009, CIL010, CIL011: default deny ----------------------------------------------------

def test_cil009_default_deny_with_peers_that_select_nothing(tmp_path: Path) -> None:
    spec = "endpointSelector:\n  matchLabels:\n    app: job\ningress:\n  - fromEndpoints:\n      - matchLabels:\n          app: nobody"
    f = one(run(tmp_path, cnp("x", "batch", spec), select=["CIL009"]), "CIL009")
    assert f.severity is Severity.warning and "batch/job-1" in f.message and "batch/job-2" in f.message


def test_cil009_explicit_default_deny_is_info(tmp_path: Path) -> None:
    f = one(run(tmp_path, cnp("x", "batch", "endpointSelector: {}\ningress:\n  - {}"), select=["CIL009"]), "CIL009")
    assert f.severity is Severity.info and f.message.startswith("explicit default deny")


def test_cil009_explicit_default_deny_with_deny_rules_beside_it_is_info(tmp_path: Path) -> None:
    deny = ccnp("deny-smtp", "endpointSelector: {}\negressDeny:\n  - toPorts:\n      - ports:\n          - port: \"25\"")
    r = run(tmp_path, cnp("x", "batch", "endpointSelector: {}\negress:\n  - {}"), deny, select=["CIL009"])
    batch = [f for f in of(r, "CIL009") if "batch/" in f.message]
    assert len(batch) == 1 and batch[0].severity is Severity.info


def test_cil009_negative_something_allowed(tmp_path: Path) -> None:
    r = run(tmp_path, cnp("x", "batch", "endpointSelector: {}\ningress:\n  - fromEntities: [cluster]"), select=["CIL009"])
    assert of(r, "CIL009") == []


DB_ONLY = cnp("to-db", "shop", """
    endpointSelector:
      matchLabels:
        app: backend
    egress:
      - toEndpoints:
          - matchLabels:
              app: db
        toPorts:
          - ports:
              - port: "5432"
                protocol: TCP
""")


def test_cil010_egress_default_deny_cuts_dns(tmp_path: Path) -> None:
    f = one(run(tmp_path, DB_ONLY, select=["CIL010"]), "CIL010")
    assert f.severity is Severity.warning and "shop/backend-1" in f.message and "DNS" in f.message


def test_cil010_is_an_error_when_the_flows_show_dns_use(tmp_path: Path) -> None:
    f = one(run(tmp_path, DB_ONLY, flows=True, select=["CIL010"]), "CIL010")
    assert f.severity is Severity.error and "the flows show shop/backend-1 using DNS" in f.message


def test_cil010_negative_dns_allowed(tmp_path: Path) -> None:
    assert of(run(tmp_path, DB_ONLY + DNS_RULE.lstrip("\n"), select=["CIL010"]), "CIL010") == []


DENY_ONLY = cnp("no-metadata", "shop", "endpointSelector: {}\negressDeny:\n  - toCIDR:\n      - 169.254.169.254/32")


def test_cil011_deny_only_direction(tmp_path: Path) -> None:
    f = one(run(tmp_path, DENY_ONLY, select=["CIL011"]), "CIL011")
    assert f.severity is Severity.error and f.field == "spec.egressDeny[0]"
    assert "all other egress traffic is dropped" in f.message and "enableDefaultDeny" in f.hint


def test_cil011_negative_allow_the_rest(tmp_path: Path) -> None:
    assert of(run(tmp_path, DENY_ONLY + "  egress:\n    - toEntities: [all]\n", select=["CIL011"]), "CIL011") == []
    no_dd = DENY_ONLY + "  enableDefaultDeny:\n    egress: false\n"
    assert of(run(tmp_path, no_dd, select=["CIL011"]), "CIL011") == []


# -- CIL012 .. CIL015: overlaps ---------------------------------------------------------------

L4_ANY_PEER = cnp("l4", "shop", """
    endpointSelector:
      matchLabels:
        app: order-api
    ingress:
      - fromEndpoints:
          - {}
        toPorts:
          - ports:
              - port: "8080"
                protocol: TCP
""")


def test_cil012_l3l4_allow_makes_l7_ineffective(tmp_path: Path) -> None:
    r = run(tmp_path, l7_on("{matchLabels: {app: order-api}}"), L4_ANY_PEER, select=["CIL012"])
    f = one(r, "CIL012")
    assert f.field == "spec.ingress[0].toPorts[0].rules" and "shop/l4 spec.ingress[0]" in f.message
    assert f.related and f.related[0][2] is not None


def test_cil012_negative_l7_alone(tmp_path: Path) -> None:
    assert of(run(tmp_path, l7_on("{matchLabels: {app: order-api}}"), select=["CIL012"]), "CIL012") == []


def test_cil013_allow_made_unreachable_by_deny(tmp_path: Path) -> None:
    policy = cnp("be", "shop", BACKEND_RULES + "    ingressDeny:\n      - fromEndpoints:\n          - matchLabels:\n              app: frontend\n")
    f = one(run(tmp_path, policy, select=["CIL013"]), "CIL013")
    assert f.field == "spec.ingress[0]" and "spec.ingressDeny[0]" in f.message


def test_cil013_negative_deny_elsewhere(tmp_path: Path) -> None:
    policy = cnp("be", "shop", BACKEND_RULES + '    ingressDeny:\n      - toPorts:\n          - ports:\n              - port: "9090"\n')
    assert of(run(tmp_path, policy, select=["CIL013"]), "CIL013") == []


def test_cil014_duplicate_rule_reports_the_later_one(tmp_path: Path) -> None:
    dup = cnp("be", "shop", BACKEND_RULES)
    dup2 = cnp("be-again", "shop", BACKEND_RULES)
    f = one(run(tmp_path, dup, dup2, select=["CIL014"]), "CIL014")
    assert f.policy is not None and f.policy.name == "be-again" and "shop/be spec.ingress[0]" in f.message


def test_cil014_rule_inside_a_broader_one(tmp_path: Path) -> None:
    broad = cnp("all-http", "shop", BACKEND_RULES.replace("          - matchLabels:\n              app: frontend", "          - {}"))
    f = one(run(tmp_path, cnp("be", "shop", BACKEND_RULES), broad, select=["CIL014"]), "CIL014")
    assert f.policy is not None and f.policy.name == "be"


def test_cil014_negative_the_rule_that_turns_default_deny_on(tmp_path: Path) -> None:
    # Alone in its direction with default deny: removing it would open ingress.
    lax = cnp("lax", "shop", BACKEND_RULES + "    enableDefaultDeny:\n      ingress: false\n")
    r = run(tmp_path, cnp("be", "shop", BACKEND_RULES), lax, select=["CIL014"])
    assert [f.policy.name for f in of(r, "CIL014") if f.policy] == ["lax"]


def test_cil015_named_port_that_resolves_to_nothing(tmp_path: Path) -> None:
    policy = cnp("be", "shop", BACKEND_RULES.replace('port: "8080"', 'port: "grpc"'))
    f = one(run(tmp_path, policy, select=["CIL015"]), "CIL015")
    assert "named port(s) grpc" in f.message


def test_cil015_default_deny_flag_without_the_section(tmp_path: Path) -> None:
    spec = "endpointSelector: {}\negress:\n  - toEntities: [all]\nenableDefaultDeny:\n  ingress: true"
    f = one(run(tmp_path, cnp("x", "shop", spec), select=["CIL015"]), "CIL015")
    assert f.field == "spec.enableDefaultDeny.ingress" and "has no effect" in f.message


def test_cil015_negative(tmp_path: Path) -> None:
    policy = cnp("be", "shop", BACKEND_RULES.replace('port: "8080"', 'port: "http"'))
    assert of(run(tmp_path, policy, select=["CIL015"]), "CIL015") == []


# -- CIL016, CIL017: fields ------------------------------------------------------------------

def test_cil016_requires_and_kafka(tmp_path: Path) -> None:
    spec = BACKEND_RULES + textwrap.indent(textwrap.dedent("""
        - fromRequires:
            - matchLabels:
                env: prod
          toPorts:
            - ports:
                - port: "9092"
                  protocol: TCP
              rules:
                kafka:
                  - role: produce
                    topic: orders
    """).strip("\n"), "      ") + "\n"
    r = run(tmp_path, cnp("be", "shop", spec), select=["CIL016"])
    fields = sorted(f.field for f in of(r, "CIL016"))
    assert fields == ["spec.ingress[1].fromRequires", "spec.ingress[1].toPorts[0].rules.kafka"]


def test_cil016_negative(tmp_path: Path) -> None:
    assert of(run(tmp_path, cnp("be", "shop", BACKEND_RULES), select=["CIL016"]), "CIL016") == []


def test_cil017_fields_not_evaluated(tmp_path: Path) -> None:
    spec = BACKEND_RULES.replace('                protocol: TCP\n', '                protocol: TCP\n            serverNames: ["shop.example.com"]\n')
    f = one(run(tmp_path, cnp("be", "shop", spec), select=["CIL017"]), "CIL017")
    assert f.field == "spec.ingress[0].toPorts[0].serverNames" and "not evaluated" in f.message


def test_cil017_negative(tmp_path: Path) -> None:
    assert of(run(tmp_path, cnp("be", "shop", BACKEND_RULES), select=["CIL017"]), "CIL017") == []


@pytest.mark.parametrize("check", [f"CIL{n:03d}" for n in range(1, 18)])
def test_every_check_has_tests_here(check: str) -> None:
    text = Path(__file__).read_text()
    assert f"def test_{check.lower()}_" in text


def test_cil005_node_selector_typo(tmp_path: Path) -> None:
    host = ccnp("host", "nodeSelector:\n  matchLabels:\n    node-role.kubernetes.io/control-plan: \"\"\ningress:\n  - fromEntities: [cluster]")
    f = one(run(tmp_path, host, select=["CIL005"]), "CIL005")
    assert f.field == "spec.nodeSelector" and "did you mean node-role.kubernetes.io/control-plane?" in f.message
