"""Rule repository -> per-endpoint policy maps (layer 4: imports model/ to cluster/, root utils)."""
