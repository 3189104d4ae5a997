"""The datapath edge: policies enforced by a real Linux datapath on one host.

Modules: `netns` (plain helpers: namespaces, `ip` batches, switching a thread's network
namespace, marked long-running processes), `lab` (a cluster snapshot's pods as network
namespaces in Cilium's routed topology), `podserver` (the echo/HTTP server inside them),
`prober` (many probes at once from one namespace), `ruleset` and `compile` (policy maps as
nftables sets and chains), `netlink` (raw netlink sockets and messages), `nftspec`,
`nftcodec` and `nftnl` (nf_tables set elements: values, bytes, the batch writer), `nflog`
(NFLOG and conntrack event readers), `events` (datapath verdict events as Hubble flows),
`agent` (the daemon), `hubble` (Hubble's Observer gRPC API), `labtest` (`test --lab`).

Building anything needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN). The package sits above the
workflows: it may import any ciliary layer below it, and nothing below imports it.
"""
