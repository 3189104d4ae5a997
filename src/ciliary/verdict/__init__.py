"""Flow in, verdict out, with the rules that decided it."""
