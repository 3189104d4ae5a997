"""Agent options that change what a policy may contain (Cilium's names, snake_cased).

A frozen value: the policy loader's only input besides the documents.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValidationOptions:
    enable_l7_proxy: bool = True  # --enable-l7-proxy
    enable_icmp_rules: bool = True  # --enable-icmp-rules
    enable_node_selector_labels: bool = False  # --enable-node-selector-labels (fromNodes/toNodes)
    # --enable-extended-ip-protocols: VRRP, IGMP, GRE, IPIP, IPV6, ESP, AH in toPorts (port
    # empty or "0"), and a PortProtocol may omit its port.
    enable_extended_ip_protocols: bool = False
