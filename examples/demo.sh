#!/usr/bin/env bash
# The demo `make demo` runs on the bundled seed example.
set -euo pipefail
ciliary=${1:-ciliary}
here=$(cd "$(dirname "$0")" && pwd)
echo "\$ ciliary validate examples/seed/policies"
"$ciliary" validate "$here/seed/policies"
echo
echo "\$ ciliary identities --cluster examples/seed/cluster.yaml"
"$ciliary" identities --cluster "$here/seed/cluster.yaml"
