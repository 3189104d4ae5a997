"""Flow in, verdict out, with the rules that decided it (layer 6: imports lower layers only)."""
