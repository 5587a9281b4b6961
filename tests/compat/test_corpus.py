"""The compatibility corpus: every case of tests/compat/cases/ built by dockyard and by buildah, then compared.

One test per case directory (``pytest tests/compat -k heredoc``).  For each case: the directory is copied to
the test's tmp dir, its setup.sh runs there (then setup.sh and case.toml leave the context), dockyard's CLI
builds it into an OCI layout and buildah builds it into its shared storage (no registry round trip for either
result), both are unpacked with umoci, flattened and compared (tree.diff_trees, tree.compare_configs), and
``[expect]`` is checked on dockyard's image.  A case expecting an error needs both builders to fail, dockyard
with the stated message and exit code.  ``DOCKYARD_COMPAT_KEEP=1`` keeps the unpacked trees.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.compat import corpus
from tests.compat.conftest import CorpusSession
from tests.support import oracle, tree

MAX_LISTED = 60  # differences shown per section of a failure message
DOCKYARD_TIMEOUT = 600


class _Timer:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        start = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - start


# ---------------------------------------------------------------------------------------------- builds


def _run_dockyard(case: corpus.Case, context: Path, build_args: dict, oci_dir: Path,
                  session: CorpusSession) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dockyard", "build", "--progress=plain", "-f", str(context / case.dockerfile),
           "-t", f"compat/{case.name}:latest", "--output", f"type=oci,dest={oci_dir}"]
    cmd += [f"--build-arg={k}={v}" for k, v in build_args.items()]
    cmd += ["--target", case.target] if case.target else []
    cmd += [f"--secret={s}" for s in corpus.absolute_secrets(case.secrets, context)]
    cmd += [f"--build-context={c}" for c in corpus.build_context_values(case, context, build_args)]
    env = {**os.environ, "CI": "true", "XDG_CACHE_HOME": str(session.dockyard_cache), **case.env}
    return subprocess.run([*cmd, str(context)], cwd=context, env=env, capture_output=True, text=True,
                          timeout=DOCKYARD_TIMEOUT)


def _buildah_tag(case: corpus.Case) -> str:
    return f"localhost/compat/{case.name}:latest"


def _run_buildah(case: corpus.Case, context: Path, build_args: dict, session: CorpusSession) -> str | None:
    """Builds with buildah; returns None on success, buildah's error output on failure."""
    try:
        oracle.buildah_build(context, context / case.dockerfile, _buildah_tag(case), session.buildah_workdir,
                             build_args, case.target, secrets=corpus.absolute_secrets(case.secrets, context),
                             env=case.env, push=False,
                             extra_args=[f"--build-context={c}"
                                         for c in corpus.build_context_values(case, context, build_args)])
    except oracle.ToolError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------------------------- reading back


def _blob(oci_dir: Path, digest: str) -> bytes:
    return (oci_dir / "blobs" / digest.replace(":", "/")).read_bytes()


def _uncompressed(data: bytes, media_type: str) -> bytes:
    if media_type.endswith("gzip"):
        return gzip.decompress(data)
    if media_type.endswith("zstd"):
        import zstandard  # only for zstd layers, which the corpus does not write by default

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _read_dockyard(oci_dir: Path, bundle: Path, log: str) -> corpus.BuiltImage:
    index = json.loads((oci_dir / "index.json").read_text())
    manifest = json.loads(_blob(oci_dir, index["manifests"][0]["digest"]))
    config_json = _blob(oci_dir, manifest["config"]["digest"]).decode()
    layers = [_uncompressed(_blob(oci_dir, layer["digest"]), layer["mediaType"]) for layer in manifest["layers"]]
    rootfs = oracle.unpack(oci_dir, bundle)
    return corpus.BuiltImage(rootfs, tree.flatten(rootfs), json.loads(config_json), config_json, layers, log)


def _read_buildah(case: corpus.Case, tmp: Path, session: CorpusSession) -> tuple[dict, dict]:
    tag = _buildah_tag(case)
    oci_dir = oracle.buildah_export_oci(tag, session.buildah_workdir, tmp / "buildah-oci")
    rootfs = oracle.unpack(oci_dir, tmp / "buildah-bundle")
    return tree.flatten(rootfs), oracle.buildah_config(tag, session.buildah_workdir)


# ---------------------------------------------------------------------------------------------- checks


def _section(title: str, lines: list[str]) -> str:
    if not lines:
        return ""
    shown = lines[:MAX_LISTED]
    more = f"\n    ... and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else ""
    return f"\n  {title}:\n" + "\n".join(f"    {line}" for line in shown) + more


def _check_error(case: corpus.Case, result: subprocess.CompletedProcess, buildah_error: str | None) -> list[str]:
    out = []
    want_message, want_code = case.expect.get("error"), case.expect.get("exit_code")
    if result.returncode == 0:
        out.append("dockyard built the image, but the case expects the build to fail")
    elif want_code is not None and result.returncode != want_code:
        out.append(f"dockyard exited with {result.returncode}, expected {want_code}")
    if want_message and result.returncode != 0 and want_message not in result.stderr:
        out.append(f"dockyard's error lacks {want_message!r}; it said:\n{result.stderr.strip()}")
    if "Traceback" in result.stderr:
        out.append("dockyard printed a traceback instead of an error message")
    skipped = case.exception and case.exception.skip_buildah
    if not skipped and buildah_error is None:
        out.append("buildah built the image, but the case expects both builders to fail")
    return out


def _compare_with_buildah(case: corpus.Case, ours: corpus.BuiltImage, theirs_tree: dict,
                          theirs_config: dict) -> tuple[list[str], list[str]]:
    exc = case.exception
    ignore = set(tree.buildah_stubs_left(ours.tree, theirs_tree))
    for path in exc.ignore_paths if exc else ():
        ignore |= {path, path.rstrip("/") + "/*"}
    fields = [f for f in tree.CONFIG_FIELDS if not exc or f not in exc.ignore_config]
    return (tree.diff_trees(ours.tree, theirs_tree, ignore, "dockyard", "buildah"),
            tree.compare_configs(ours.config, theirs_config, fields, "dockyard", "buildah"))


CASES = corpus.case_names()


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_case(name: str, corpus_session: CorpusSession, tmp_path: Path) -> None:
    case = corpus.load_case(corpus.CASES_DIR / name)
    timer = _Timer()
    corpus_session.timings.append((name, timer.phases))
    context = corpus.prepare_context(case, tmp_path / "context")
    build_args = {**corpus_session.bases, **case.build_args}
    skip_buildah = bool(case.exception and case.exception.skip_buildah)

    with timer.phase("dockyard"):
        result = _run_dockyard(case, context, build_args, tmp_path / "dockyard-oci", corpus_session)
    buildah_error = None
    if not skip_buildah:
        with timer.phase("buildah"):
            buildah_error = _run_buildah(case, context, build_args, corpus_session)
    header = f"case {name}: {case.about}"
    if case.expects_error:
        failures = _check_error(case, result, buildah_error)
        if failures:
            pytest.fail(header + _section("expected failure", failures), pytrace=False)
        return

    if result.returncode != 0:
        pytest.fail(f"{header}\n  dockyard failed ({result.returncode}):\n{result.stderr}", pytrace=False)
    if buildah_error is not None:
        pytest.fail(f"{header}\n  buildah failed (dockyard did not):\n{buildah_error}", pytrace=False)
    try:
        with timer.phase("read"):
            ours = _read_dockyard(tmp_path / "dockyard-oci", tmp_path / "dockyard-bundle",
                                  result.stdout + result.stderr)
            theirs = None if skip_buildah else _read_buildah(case, tmp_path, corpus_session)
        tree_diffs, config_diffs = _compare_with_buildah(case, ours, *theirs) if theirs else ([], [])
        expect_failures = corpus.check_expectations(case.expect, ours)
        if tree_diffs or config_diffs or expect_failures:
            pytest.fail(header
                        + _section("filesystem, dockyard vs buildah", tree_diffs)
                        + _section("config, dockyard vs buildah", config_diffs)
                        + _section("[expect] on dockyard's image", expect_failures), pytrace=False)
    finally:
        if not os.environ.get("DOCKYARD_COMPAT_KEEP"):
            for bundle in ("dockyard-bundle", "buildah-bundle"):
                shutil.rmtree(tmp_path / bundle, ignore_errors=True)
