"""The image digests of the compatibility corpus, built reproducibly: proof that a change keeps images identical.

    .venv/bin/python benchmarks/corpus_digests.py --json digests.json          # this checkout
    .venv/bin/python benchmarks/corpus_digests.py ../before ../after           # two checkouts, compared
    .venv/bin/python benchmarks/corpus_digests.py --compare before.json after.json
    .venv/bin/python benchmarks/corpus_digests.py --all . .                   # reproducibility of every case

Builds every case of tests/compat/cases (the corpus of THIS checkout: both checkouts get the same inputs) with
the `dockyard` command of a regular install of each checkout (benchmarks/installed.py, in a scratch
virtualenv), with SOURCE_DATE_EPOCH fixed and `--reproducible`, into an OCI layout, and records the manifest
and config digests of each image; a case whose build fails (the corpus's error cases) records its exit code.
Each build gets a fresh cache directory (no step is taken from another build, cache mounts start empty). With
two checkouts each case's context is prepared once (its setup.sh run once) and built by both, one after the
other; the table of both results is printed and the exit status is 1 on any difference.

The base images (tests/support/images.py: busybox and the fidelity base, as the corpus tests get them) are
made once per invocation and pushed to Debian's docker-registry on loopback (tests/support/registry.py) at a
fixed port: an image records its base's reference (the org.opencontainers.image.base.name annotation), so the
port must be the same for files written by different invocations to be comparable. Nothing else is reached.

Cases in NOT_REPRODUCIBLE are left out (with --all they are built too): their image differs from one build to
the next with the same code, for the reason given there (`--all . .` shows it).

Run as root (the corpus needs overlayfs, namespaces, device nodes and owners, as its tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.installed import install  # noqa: E402  (the root must be importable)
from tests.compat import corpus  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z
REGISTRY_PORT = 5099  # below Linux's ephemeral range, where the tests' registries get their free ports
BUILD_TIMEOUT = 600
# What a checkout needs for `pip install` (pyproject.toml's package-dir and readme).
PACKAGE_FILES = ("pyproject.toml", "README.md", "core", "integrations")

# Cases whose image differs between two builds of the same code (found with `--all . .`), and why. None at
# 5f2df09: all 179 cases gave the same digests twice (a RUN writing `date` or /dev/urandom bytes does not).
# A case's inputs must not depend on when they were made either: setup.sh scripts that make an archive the
# image holds as is give its members a fixed mtime (`tar --mtime=@...`), so that runs made at different
# times (--compare) agree.
NOT_REPRODUCIBLE: dict[str, str] = {}

MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class Checkout:
    """One tree's dockyard, installed in a scratch virtualenv."""

    path: Path
    revision: str  # `git describe`, with "-dirty" for uncommitted changes
    dockyard: Path  # its `dockyard` script


@dataclass(frozen=True)
class Result:
    """One build: the image's digests, or the exit code of a failed build."""

    manifest: str | None = None
    config: str | None = None
    exit_code: int | None = None

    def to_json(self) -> dict[str, object]:
        if self.exit_code is not None:
            return {"exit_code": self.exit_code}
        return {"manifest": self.manifest, "config": self.config}

    @staticmethod
    def from_json(raw: Mapping[str, object]) -> Result:
        code = raw.get("exit_code")
        return Result(manifest=str(raw["manifest"]) if "manifest" in raw else None,
                      config=str(raw["config"]) if "config" in raw else None,
                      exit_code=code if isinstance(code, int) else None)

    def short(self) -> str:
        if self.exit_code is not None:
            return f"exit {self.exit_code}"
        return f"{(self.manifest or '')[7:19]} / {(self.config or '')[7:19]}"


# ---------------------------------------------------------------------------------------------- setup


def _revision(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "describe", "--always", "--dirty"], check=False,
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def install_checkout(path: Path, scratch: Path) -> Checkout:
    """The checkout's dockyard, installed from a copy of its package files (pip would write build/ and
    *.egg-info into the tree it installs from)."""
    sources = scratch / "sources"
    for name in PACKAGE_FILES:
        if (path / name).is_dir():
            shutil.copytree(path / name, sources / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            sources.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path / name, sources / name)
    script = install(scratch / "venv", source=sources)
    return Checkout(path, _revision(path), script)


def manifest_digest(registry: RegistryServer, ref: str) -> str:
    """The digest of a base's manifest in the registry (what the built images point to)."""
    import requests

    repo, _, tag = ref.removeprefix(registry.host + "/").rpartition(":")
    with requests.Session() as session:
        session.trust_env = False  # loopback: no proxy
        response = session.head(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES},
                                timeout=30)
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"]


def push_bases(registry: RegistryServer, workdir: Path) -> dict[str, str]:
    """The build args every case gets (BASE, FIDELITY_BASE), as tests/compat/conftest.py gives them."""
    return {"BASE": images.push_busybox_base(registry.host, workdir / "busybox"),
            "FIDELITY_BASE": images.push_fidelity_base(registry.host, workdir / "fidelity")}


# ---------------------------------------------------------------------------------------------- builds


def build(checkout: Checkout, case: corpus.Case, context: Path, bases: Mapping[str, str], scratch: Path,
          keep: Path | None = None) -> Result:
    """The case built by the checkout's dockyard into an OCI layout (`keep` if given, else a scratch directory),
    as tests/compat/test_corpus.py builds it, reproducibly and with a cache directory of its own."""
    build_args = {**bases, **case.build_args}
    oci_dir = keep or scratch / "oci"
    cmd = [str(checkout.dockyard), "build", "--progress=plain", "--reproducible",
           "-f", str(context / case.dockerfile), "-t", f"compat/{case.name}:latest",
           "--output", f"type=oci,dest={oci_dir}"]
    cmd += [f"--build-arg={k}={v}" for k, v in build_args.items()]
    cmd += ["--target", case.target] if case.target else []
    cmd += [f"--secret={s}" for s in corpus.absolute_secrets(case.secrets, context)]
    cmd += [f"--build-context={c}" for c in corpus.build_context_values(case, context, build_args)]
    env = {**os.environ, "CI": "true", "XDG_CACHE_HOME": str(scratch / "cache"), "SOURCE_DATE_EPOCH": str(EPOCH),
           **case.env}
    try:
        proc = subprocess.run([*cmd, str(context)], check=False, cwd=context, env=env, capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT)
        if proc.returncode != 0:
            if not case.expects_error:
                print(f"  {case.name}: the build failed ({proc.returncode}):\n{proc.stderr[-2000:]}",
                      file=sys.stderr)
            return Result(exit_code=proc.returncode)
        index = json.loads((oci_dir / "index.json").read_text())
        manifest = index["manifests"][0]["digest"]
        config = json.loads((oci_dir / "blobs" / manifest.replace(":", "/")).read_bytes())["config"]["digest"]
        return Result(manifest=manifest, config=config)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def selected_cases(only: Sequence[str], include_all: bool) -> list[corpus.Case]:
    names = [n for n in corpus.case_names() if not only or any(part in n for part in only)]
    return [corpus.load_case(corpus.CASES_DIR / n) for n in names if include_all or n not in NOT_REPRODUCIBLE]


def build_corpus(checkouts: Sequence[Checkout], cases: Sequence[corpus.Case], bases: Mapping[str, str],
                 scratch: Path, keep: Path | None = None) -> list[dict[str, Result]]:
    """Every case built by every checkout: one {case: result} per checkout. Each context is prepared once.
    With `keep`, the images stay there as OCI layouts, `keep/N/CASE` (N: the checkout's place, from 1)."""
    results: list[dict[str, Result]] = [{} for _ in checkouts]
    for number, case in enumerate(cases, 1):
        context = corpus.prepare_context(case, scratch / "context")
        try:
            for n, checkout in enumerate(checkouts):
                kept = keep / str(n + 1) / case.name if keep else None
                results[n][case.name] = build(checkout, case, context, bases, scratch / f"build-{n}", kept)
        finally:
            shutil.rmtree(scratch / "context", ignore_errors=True)
        shown = "  ".join(results[n][case.name].short() for n in range(len(checkouts)))
        print(f"[{number}/{len(cases)}] {case.name}: {shown}", file=sys.stderr)
    return results


# ---------------------------------------------------------------------------------------------- files and tables


def digests_file(checkout: Checkout, bases: Mapping[str, str], results: Mapping[str, Result]) -> dict[str, object]:
    return {
        "checkout": str(checkout.path),
        "revision": checkout.revision,
        "source_date_epoch": EPOCH,
        "bases": dict(bases),
        "excluded": dict(NOT_REPRODUCIBLE),
        "cases": {name: result.to_json() for name, result in sorted(results.items())},
    }


def compare(before: Mapping[str, Result], after: Mapping[str, Result], labels: tuple[str, str]) -> int:
    """Prints a table of both results; returns how many cases differ (a case only one side has counts)."""
    width = max([len(n) for n in (*before, *after)] + [4])
    print(f"{'case':<{width}}  {labels[0][:27]:<27}  {labels[1][:27]:<27}  ")
    differences = 0
    for name in sorted({*before, *after}):
        one, other = before.get(name), after.get(name)
        same = one == other
        differences += not same
        print(f"{name:<{width}}  {one.short() if one else 'missing':<27}  {other.short() if other else 'missing':<27}  "
              f"{'same' if same else 'DIFFERENT'}")
    print(f"{len({*before, *after})} cases, {differences} different")
    return differences


def load(path: Path) -> tuple[dict[str, object], dict[str, Result]]:
    raw = json.loads(path.read_text())
    return raw, {name: Result.from_json(result) for name, result in raw["cases"].items()}


def compare_files(before_path: Path, after_path: Path) -> int:
    before_raw, before = load(before_path)
    after_raw, after = load(after_path)
    for key in ("bases", "source_date_epoch"):
        if before_raw[key] != after_raw[key]:
            print(f"the two files were made with different {key} ({before_raw[key]} / {after_raw[key]}): "
                  "their digests cannot be compared", file=sys.stderr)
            return 2
    differences = compare(before, after, (f"{before_path.name} {before_raw['revision']}",
                                          f"{after_path.name} {after_raw['revision']}"))
    return 1 if differences else 0


# ---------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("checkouts", nargs="*", type=Path, metavar="CHECKOUT",
                        help="one or two trees whose dockyard builds the corpus (default: this one)")
    parser.add_argument("--json", type=Path, action="append", default=[], metavar="FILE",
                        help="write a checkout's digests there (once per checkout, in their order)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                        help="compare two files written by --json; builds nothing")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the cases whose name contains TEXT (repeatable)")
    parser.add_argument("--all", action="store_true", help="build the non-reproducible cases too")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep every image as an OCI layout, DIR/N/CASE (N: 1 or 2, the checkout), to look "
                             "into a difference")
    parser.add_argument("--registry-port", type=int, default=REGISTRY_PORT,
                        help=f"the loopback registry's port (default {REGISTRY_PORT}; files made with different "
                             "ports differ in every digest)")
    args = parser.parse_args(argv)
    if args.compare:
        return compare_files(*args.compare)
    paths = [p.resolve() for p in args.checkouts] or [ROOT]
    if len(paths) > 2 or len(args.json) > len(paths):
        parser.error("one or two checkouts, and at most one --json per checkout")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="corpus-digests-", dir="/var/tmp") as tmp:
        scratch = Path(tmp)
        installed: dict[Path, Checkout] = {}
        for n, path in enumerate(paths):  # the same tree twice is installed once
            if path not in installed:
                installed[path] = install_checkout(path, scratch / f"checkout-{n}")
        checkouts = [installed[p] for p in paths]
        registry = RegistryServer.start(scratch / "registry", port=args.registry_port)
        try:
            bases = push_bases(registry, scratch / "bases")
            pinned = {arg: f"{ref}@{manifest_digest(registry, ref)}" for arg, ref in bases.items()}
            cases = selected_cases(args.only, args.all)
            build_started = time.monotonic()
            results = build_corpus(checkouts, cases, bases, scratch / "builds", args.keep)
            build_time = time.monotonic() - build_started
        finally:
            registry.stop()
    for checkout, result, out in zip(checkouts, results, args.json):
        out.write_text(json.dumps(digests_file(checkout, pinned, result), indent=1) + "\n")
    print(f"{len(cases)} cases x {len(checkouts)} checkout(s) built in {build_time:.0f} s "
          f"({time.monotonic() - started:.0f} s in all)", file=sys.stderr)
    if len(checkouts) == 1:
        if not args.json:
            print(json.dumps(digests_file(checkouts[0], pinned, results[0]), indent=1))
        return 0
    labels = (f"{checkouts[0].path.name} {checkouts[0].revision}", f"{checkouts[1].path.name} {checkouts[1].revision}")
    return 1 if compare(results[0], results[1], labels) else 0


if __name__ == "__main__":
    sys.exit(main())
