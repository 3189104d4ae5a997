"""Rule repository and its resolution into per-endpoint policy maps."""
