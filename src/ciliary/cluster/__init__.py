"""The cluster snapshot: namespaces, pods, nodes, services, and their endpoints."""
