#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, start a registry on loopback, build the bundled
# example (a busybox base first, then examples/hello with its RUN steps), push it, and write an OCI layout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

out=.dockyard-demo
rm -rf "$out" && mkdir -p "$out"
registry=$(bash scripts/registry.sh "$PWD/$out/registry")
trap 'kill "$(cat "$out/registry/pid")" 2>/dev/null || true' EXIT
echo "registry running at $registry"

cp /bin/busybox examples/busybox-base/busybox
trap 'kill "$(cat "$out/registry/pid")" 2>/dev/null || true; rm -f examples/busybox-base/busybox' EXIT
dockyard build --progress=plain -t "$registry/dockyard/busybox:latest" --push examples/busybox-base

dockyard build --progress=plain \
  --build-arg BASE="$registry/dockyard/busybox:latest" --build-arg VERSION=1.0 \
  -t "$registry/examples/hello:1.0" -t "$registry/examples/hello:latest" --push \
  --output "type=oci,dest=$out/hello-oci" \
  --digest-file "$out/digest" --metadata-file "$out/metadata.json" \
  examples/hello

echo
echo "pushed $registry/examples/hello:1.0 and :latest"
echo "OCI layout written to $out/hello-oci"
echo "digest: $(cat "$out/digest")"
