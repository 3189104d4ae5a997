"""`ciliary test`: connectivity expectations as CI tests.

An expectations file (YAML, one mapping; paths relative to the file's own directory):

    cluster: cluster.yaml              # required: snapshot file or directory
    policies: [policies/]              # optional, one path or a list; default: the snapshot's
    config: agent.yaml                 # optional agent options file (as --config)
    options: {policy-audit-mode: true} # optional agent options, Cilium's names; win over config
    cases:
      - name: gateway may create a payment           # required, unique in the file
        from: gateway/api-gateway-7d9f               # required: NS/POD | node/NAME | an IP
        to: cde-payments/card-processor-6b7c         # required, the same
        port: 8443/TCP                               # PORT[/TCP|UDP|SCTP], or icmp: TYPE[/v6]
        http: {method: POST, path: /v1/payments, host: h, headers: ["X-A: b"]}
        # or dns: {query: NAME} (port defaults to 53/UDP), or
        # kafka: {role: produce|consume | api_key: NAME, topic: T | topics: [..], client_id, api_version}
        resolve: {api.example.com: [203.0.113.10]}   # DNS answers the source learns first
        expect: redirected                           # required: allowed | denied | audit | redirected
        reason: POLICY_DENIED                        # denied/audit only: Hubble name, number or text
        l7_status: 403                               # with a request: HTTP status, DNS rcode, Kafka code
    tables:                                          # Kubernetes e2e truth tables
      - name: cde ingress                            # required, unique
        port: 8443/TCP                               # or icmp
        grid: |                                      # '.' allowed, 'X' denied, 'A' audit, 'R' redirected
          -       ns/a  ns/b
          ns/a    .     X
          ns/b    .     .

Contracts:
* `load_expectations` returns a file only when all of it is good; otherwise LoadError with
  every problem located by file, line, case and field (one per case). `prepare` builds the
  engine and checks that every pod and node named exists (LoadError otherwise, with the
  nearest names), so nothing runs for a bad file.
* Every verdict comes from `workflows.trace.trace`, as `ciliary trace` gives it; the outcome
  words and which `expect` accepts which are defined in `model` (`outcome`, `ACCEPTS`).
* Cases are independent: `resolve` answers are learned on an engine of the case's own.
* Each table cell is a case named `TABLE: SRC -> DST PORT`, located at its row.
"""

from __future__ import annotations

from ciliary.workflows.expect.junit import junit_xml
from ciliary.workflows.expect.load import load_expectations
from ciliary.workflows.expect.model import (
    ACCEPTS,
    EXPECTS,
    Case,
    CaseResult,
    ExpectationsFile,
    FileResult,
    RunResult,
    outcome,
)
from ciliary.workflows.expect.render import failure_text, rows, summary
from ciliary.workflows.expect.run import Prepared, prepare, run_file

__all__ = [
    "ACCEPTS",
    "EXPECTS",
    "Case",
    "CaseResult",
    "ExpectationsFile",
    "FileResult",
    "Prepared",
    "RunResult",
    "failure_text",
    "junit_xml",
    "load_expectations",
    "outcome",
    "prepare",
    "rows",
    "run_file",
    "summary",
]
