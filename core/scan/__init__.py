"""Vulnerability scanning: an image's packages (from its SBOM catalog) matched against OSV advisories."""
