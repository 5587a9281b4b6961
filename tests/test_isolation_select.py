"""detect.select(): a build's mode from the fewest probes, with the overlay probe possibly started ahead by the
CLI (start_overlay_probe). Real probes as root on this machine (namespaces and overlayfs work here)."""

from __future__ import annotations

import os
import shutil

import pytest

from dockyard.isolation import detect


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@pytest.fixture(autouse=True)
def _as_root():
    if os.geteuid() != 0:
        pytest.skip("the namespaces mode needs root")


def test_select_agrees_with_the_full_probe(tmp_path):
    assert detect.select(str(tmp_path)) == detect.choose(detect.probe(str(tmp_path)))
    assert detect.select(str(tmp_path)).name == "namespaces"


def test_a_probe_started_ahead_is_collected_by_select(tmp_path):
    detect.start_overlay_probe(str(tmp_path))
    pid = detect._overlay_probes[str(tmp_path)]
    detect.start_overlay_probe(str(tmp_path))  # once per work dir
    assert detect._overlay_probes[str(tmp_path)] == pid
    mode = detect.select(str(tmp_path))
    assert mode.name == "namespaces"
    assert str(tmp_path) not in detect._overlay_probes and _reaped(pid)
    assert not any(tmp_path.iterdir())  # the probe's scratch directory is gone


def test_a_probe_started_ahead_is_reaped_when_proot_is_asked_for(tmp_path):
    if shutil.which("proot") is None:
        pytest.skip("proot is not installed")
    detect.start_overlay_probe(str(tmp_path))
    pid = detect._overlay_probes[str(tmp_path)]
    assert detect.select(str(tmp_path), "proot") == detect.Mode("proot", "asked for with --isolation=proot")
    assert _reaped(pid)


def test_where_overlayfs_does_not_mount_select_falls_back_to_the_full_probe(tmp_path):
    if shutil.which("proot") is None:
        pytest.skip("proot is not installed")
    missing = tmp_path / "missing"  # no directory for the probe's overlay: it cannot mount
    mode = detect.select(str(missing))
    assert mode == detect.Mode("proot", "overlayfs cannot be mounted")
