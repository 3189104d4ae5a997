"""Labels, selectors, identities, the ipcache (layer 2: imports only model/ and root utilities)."""
