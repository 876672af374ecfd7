"""C2PA content credentials: local keys, signing, and reading/validating manifests."""
