#!/usr/bin/env bash
# The demo `make demo` runs on the bundled seed example.
set -euo pipefail
ciliary=${1:-ciliary}
case "$ciliary" in /*) ;; */*) ciliary="$PWD/$ciliary" ;; esac
cd "$(dirname "$0")/.."
seed=examples/seed
run() { echo "\$ ciliary $*"; "$ciliary" "$@"; }

run validate "$seed/policies"
echo
run identities --cluster "$seed/cluster.yaml"
echo
echo "# An allowed flow: Prometheus scrapes the shop backend (policy allow-from-monitoring)."
run trace --cluster "$seed/cluster.yaml" --policies "$seed/policies" \
    --src monitoring/prometheus-0 --dst shop/backend-5f6d8c9b7-xz91c --dport 9090/TCP
echo
echo "# A denied flow: deny-metadata-endpoint has only egressDeny, and that alone flips every"
echo "# shop pod's egress to default deny, so frontend -> backend dies at the frontend's egress."
status=0
run trace --cluster "$seed/cluster.yaml" --policies "$seed/policies" \
    --src shop/frontend-7d9c5b8f6-k2x4p --dst shop/backend-5f6d8c9b7-xz91c --dport 8080/TCP || status=$?
if [ "$status" -ne 1 ]; then echo "expected exit status 1 (dropped), got $status" >&2; exit 1; fi
echo
run matrix --cluster "$seed/cluster.yaml" --policies "$seed/policies" --dport 8080/TCP
echo
echo "# The seed's rollout, stage 3: replay a day of recorded flows with the stage-2 allow"
echo "# policies plus default deny in audit mode. Only the nightly batch, left out of the"
echo "# allow policies, shows AUDIT: that is what stage 4 would drop."
run replay "$seed/flows.json" --cluster "$seed/cluster.yaml" \
    --policies "$seed/rollout/payments-allow.yaml" --policies "$seed/policies/09-default-deny.yaml" --audit-mode
echo
echo "# The authoring loop, stage 1: whom payments talks to (the seed's jq | sort | uniq -c)."
run connections "$seed/flows.json" --cluster "$seed/cluster.yaml" --namespace payments
echo
echo "# Stage 2, derived from the same day of flows: one least-privilege policy per workload,"
echo "# each rule with the flows behind it, checked by replaying the flows through them."
run generate "$seed/flows.json" --cluster "$seed/cluster.yaml" --namespace payments --l7 all
echo
echo "# Policies are code. lint finds the pitfalls; its one error is the deny-only trap above."
status=0
run lint --cluster "$seed/cluster.yaml" --policies "$seed/policies" || status=$?
if [ "$status" -ne 1 ]; then echo "expected exit status 1 (an error-level finding), got $status" >&2; exit 1; fi
echo
echo "# Connectivity expectations as CI tests: the seed's PCI DSS scenario (JUnit with --junit)."
run test examples/pci/expectations.yaml
