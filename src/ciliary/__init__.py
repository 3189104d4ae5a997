"""ciliary: Cilium's network-policy system, in Python."""

__version__ = "0.1.0"
