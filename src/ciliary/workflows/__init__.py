"""Workflows compose the core layers; the CLI is a thin shell over them."""
