"""Labels, selectors and security identities (pure; no I/O, no cluster or policy imports)."""
