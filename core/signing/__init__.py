"""Signatures for pushed images, in the forms cosign writes and verifiers read: the classic `sha256-<hex>.sig`
tag of simple-signing payloads, and Sigstore bundles v0.3 stored as OCI 1.1 referrers."""
