"""The cluster snapshot and its endpoints (layer 3: imports only model/, identity/, root utils)."""
