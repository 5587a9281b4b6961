"""The builder image's size, and a build inside it (under podman, in each profile) next to the same build on the host.

    .venv/bin/python benchmarks/builder_image.py [--runs 3]

Sets up what tests/e2e/test_builder_image.py sets up (loopback registries, the busybox base, a Debian base with
apt, the loopback Debian repository, both targets of images/builder/Dockerfile built by dockyard, podman), then:

* prints each target's size: the layers the Dockerfile adds on top of its base, and the whole image, compressed
  (what a pull transfers) and uncompressed (the layers' tar streams);
* builds the test's two-stage Dockerfile `--runs` times in each way, alternating, and prints the median wall time
  and the time dockyard reports for the build itself: on the host (`dockyard kaniko` as root, the namespaces mode,
  a fresh cache directory per run) and in the builder image under podman in the default, restricted and
  GitLab-recipe profiles (a fresh container per run, so a cold cache each time), next to an empty container's run
  (`sh -c true`: podman's own start and stop). Each run pushes to a repository of its own.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.e2e import test_builder_image as t  # noqa: E402 - after the path set-up
from tests.e2e.helpers import dockyard, write_context  # noqa: E402
from tests.support import oracle, podman  # noqa: E402
from tests.support.debian_apt_base import push_debian_apt_base  # noqa: E402
from tests.support.debian_repo import cached_debs, make_repo, serve  # noqa: E402
from tests.support.images import push_busybox_base  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

MB = 1_000_000


def image_sizes(ref: str, work: Path) -> tuple[list[int], list[int]]:
    """Each layer's compressed and uncompressed size, bottom first."""
    layout = oracle.fetch_oci(ref, work / ref.rsplit("/", 1)[-1].replace(":", "-"))
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / d.replace(":", "/")  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    compressed = [layer["size"] for layer in manifest["layers"]]
    uncompressed = [len(gzip.decompress(blob(layer["digest"]).read_bytes())) for layer in manifest["layers"]]
    return compressed, uncompressed


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="builder-image-bench-", dir="/var/tmp"))
    registry = RegistryServer.start(work / "registry")
    auth = RegistryServer.start(work / "auth-registry", htpasswd={t.USER: t.PASSWORD})
    debs = cached_debs(t.IMAGE_DEBS)
    if debs is None:
        raise SystemExit(f"the .deb files of {', '.join(t.IMAGE_DEBS)} are not cached: run scripts/install.sh")
    servers = ExitStack()
    url = servers.enter_context(serve(make_repo(work / "debian-repo", debs)))
    try:
        busybox = push_busybox_base(registry.host, work / "busybox")
        base = push_debian_apt_base(registry.host, work / "base", f"deb [trusted=yes] {url} ./\n")
        staged = work / "context"
        subprocess.run([sys.executable, str(REPO_ROOT / "images/builder/stage_context.py"), str(staged)],
                       check=True)
        images = {}
        for target in ("executor", "debug"):
            ref = f"{registry.host}/dockyard-builder:{target}"
            seconds = timed(lambda: _check(dockyard(
                "build", "-f", str(REPO_ROOT / "images/builder/Dockerfile"), "--build-arg", f"BASE={base}",
                "--target", target, "-t", ref, "--push", str(staged), timeout=1800)))
            images[target] = ref
            print(f"built {target} in {seconds:.0f} s")
        base_c, base_u = image_sizes(base, work / "sizes")
        print(f"test base (Debian files with apt, python3): {sum(base_c) / MB:.1f} MB compressed, "
              f"{sum(base_u) / MB:.1f} MB uncompressed")
        for target, ref in images.items():
            comp, unc = image_sizes(ref, work / "sizes")
            print(f"{target}: adds {sum(comp[1:]) / MB:.1f} MB compressed, {sum(unc[1:]) / MB:.1f} MB uncompressed "
                  f"to its base (layers: {', '.join(f'{c / MB:.2f}' for c in comp[1:])} MB compressed); "
                  f"whole image {sum(comp) / MB:.1f} / {sum(unc) / MB:.1f} MB")

        engine = podman.Podman(work / "podman", [registry.host, auth.host])
        engine.pull(images["executor"])
        engine.pull(images["debug"])
        builder = t.BuilderImages(images["executor"], images["debug"])
        ctx = write_context(work / "app", {"Dockerfile": t.APP_DOCKERFILE, "app.txt": "app\n"})
        for path in (work, ctx, *ctx.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        # Wall time of each build, and the time dockyard itself reports ("build done in X s"): the difference
        # is the container's start and stop (podman's vfs storage copies the image's files for each container).
        ways = ("host", "default", "restricted", "gitlab-debug", "empty container")
        wall: dict[str, list[float]] = {way: [] for way in ways}
        reported: dict[str, list[float]] = {way: [] for way in ways}
        for run in range(args.runs):
            for way in ways:
                dest = f"{auth.host}/bench/{way.replace(' ', '-')}:{run}"
                run_dir = work / f"run-{way.replace(' ', '-')}-{run}"
                run_dir.mkdir()
                results = []
                if way == "host":
                    secret = run_dir / "docker"
                    secret.mkdir()
                    (secret / "config.json").write_text(t.docker_config(auth))
                    env = {"DOCKER_CONFIG": str(secret), "XDG_CACHE_HOME": str(run_dir / "cache")}
                    seconds = timed(lambda: results.append(_check(dockyard(
                        "kaniko", "--context", f"dir://{ctx}", "--dockerfile", "Dockerfile", "--destination", dest,
                        "--build-arg", f"BASE={busybox}", env=env, timeout=900))))
                elif way == "empty container":
                    seconds = timed(lambda: _check(engine.run(images["executor"], ["-c", "true"],
                                                              entrypoint="/bin/sh")))
                else:
                    seconds = timed(lambda: results.append(_check(
                        t.run_profile(way, engine, builder, ctx, dest, auth, busybox, run_dir))))
                wall[way].append(seconds)
                done = re.findall(r"build done in ([0-9.]+)s", results[0].stdout + results[0].stderr) if results \
                    else []
                if done:
                    reported[way].append(float(done[-1]))
                print(f"run {run + 1}: {way} {seconds:.1f} s (dockyard: {done[-1] if done else '-'} s)", flush=True)
        for way in ways:
            values = ", ".join(f"{v:.1f}" for v in wall[way])
            line = f"{way}: median wall {statistics.median(wall[way]):.1f} s ({values})"
            if reported[way]:
                line += (f"; dockyard's own: median {statistics.median(reported[way]):.1f} s "
                         f"({', '.join(f'{v:.1f}' for v in reported[way])})")
            print(line)
        engine.remove_all()
    finally:
        servers.close()
        auth.stop()
        registry.stop()
        subprocess.run(["rm", "-rf", str(work)])


def _check(result):
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stdout}\n{result.stderr}")
    return result


if __name__ == "__main__":
    main()
