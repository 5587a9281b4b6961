"""Build attestations as BuildKit writes them: SBOM and SLSA provenance in-toto statements, stored in the image
index as one attestation manifest per platform manifest (spec.py parses buildx's flags, statement.py makes the
statements, provenance.py the provenance predicate, manifest.py the attestation manifests, compose.py puts them
together for a build)."""
