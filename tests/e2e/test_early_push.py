"""--push sends each layer of the final image while the later steps run (registry/push.py EarlyUploads); the
manifest still comes last, so a failed build tags nothing, and layers of other stages are never sent."""

from __future__ import annotations

import json

import requests

from tests.e2e.helpers import dockyard, write_context

DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS tools
RUN echo made in tools > /tool
FROM ${BASE}
COPY --from=tools /tool /copied/tool
RUN echo final > /final && sh -c 'exit ${FAIL:-0}'
"""


def _manifest_status(host: str, repo: str, tag: str) -> int:
    return requests.head(f"http://{host}/v2/{repo}/manifests/{tag}", timeout=10,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code


def _has_blob(host: str, repo: str, digest: str) -> bool:
    return requests.head(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=10).status_code == 200


def _layers(meta: dict) -> dict[str, str]:
    """The digest of the layer each step made, by its instruction's first word and line."""
    return {f"{s['instruction'].split()[0]}:{s['line']}": s["layer"] for s in meta["steps"] if s["layer"]}


def test_pushed_image_is_complete_and_other_stages_layers_stay_home(registry, busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE})
    meta_file = tmp_path / "meta.json"
    result = dockyard("build", "-q", "--push", "-t", f"{registry.host}/early/app:1", "--build-arg",
                      f"BASE={busybox_base}", "--metadata-file", str(meta_file), str(context))
    assert result.returncode == 0, result.stderr
    layers = _layers(json.loads(meta_file.read_text()))
    assert _manifest_status(registry.host, "early/app", "1") == 200
    assert _has_blob(registry.host, "early/app", layers["COPY:5"]) and _has_blob(registry.host, "early/app",
                                                                                  layers["RUN:6"])
    # The tools stage's layer is in no pushed image: it was not sent.
    assert not _has_blob(registry.host, "early/app", layers["RUN:3"])


def test_a_failed_build_tags_nothing(registry, busybox_base, tmp_path):
    context = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.replace("${FAIL:-0}", "3")})
    result = dockyard("build", "-q", "--push", "-t", f"{registry.host}/early/failed:1", "--build-arg",
                      f"BASE={busybox_base}", str(context))
    assert result.returncode == 5, result.stderr
    assert "RUN exited with 3" in result.stderr
    assert _manifest_status(registry.host, "early/failed", "1") == 404


def test_a_layer_is_in_the_registry_while_the_next_step_runs(registry, busybox_base, tmp_path):
    env = {"SOURCE_DATE_EPOCH": "1700000000"}  # the same layer digests in both builds
    first = write_context(tmp_path / "first", {"Dockerfile": DOCKERFILE})
    meta_file = tmp_path / "meta.json"
    result = dockyard("build", "-q", "--output", f"type=oci,dest={tmp_path / 'oci'}", "--build-arg",
                      f"BASE={busybox_base}", "--metadata-file", str(meta_file), str(first), env=env)
    assert result.returncode == 0, result.stderr
    copied = _layers(json.loads(meta_file.read_text()))["COPY:5"]
    # The last RUN succeeds only if the COPY's layer reaches the registry while it runs (10 s at most).
    url = f"http://{registry.host}/v2/early/waits/blobs/{copied}"
    waiting = DOCKERFILE.replace("RUN echo final > /final && sh -c 'exit ${FAIL:-0}'",
                                 f"RUN for i in $(seq 100); do wget -q -O /dev/null {url} && exit 0; sleep 0.1; done; "
                                 "exit 1")
    second = write_context(tmp_path / "second", {"Dockerfile": waiting})
    result = dockyard("build", "-q", "--push", "-t", f"{registry.host}/early/waits:1", "--build-arg",
                      f"BASE={busybox_base}", str(second), env=env)
    assert result.returncode == 0, result.stderr
