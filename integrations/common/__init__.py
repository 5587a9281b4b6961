"""What the CI adapters (integrations/github, gitlab, jenkins) share: the build request every adapter fills from
its platform's inputs and its `dockyard build` arguments (request.py), the supply-chain options (SBOM, provenance
with the CI run as builder id, signing) and the summary lines of what was attested and signed (supplychain.py),
the Dockerfile-check levels (levels.py), the OCI labels (labels.py), the default registry cache (cache.py), the
platforms inputs (platforms.py), the merge of a distributed build's images into one index (manifest.py), release
tags from a semantic version (semver.py), the process runner that reads dockyard's JSON event stream (runner.py)
into a log folded by phase (phases.py), the failure event's text (failure.py) and the findings report
(findings.py). Nothing here knows a CI platform; the adapters know nothing of each other.

The core is reached through the `dockyard` CLI (argv, its `--progress json` events and result files) and the
public names in public.py."""
