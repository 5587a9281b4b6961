"""The ownership recorder (core/isolation/ownership_recorder.py) against the real kernel: a child process runs
under its seccomp filter and calls chown, fchown, lchown, fchownat and mknod on a directory root; the recorder
answers them, the host files keep their owner, and the scan of the root carries what the image gets.

proot is left out here (tests/e2e/test_execution_modes.py builds through it): without it the child's paths
are already host paths, which is what proot hands the filter after translating them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from dockyard.isolation import ownership_recorder
from dockyard.isolation.ownership_recorder import OwnershipRecorder
from dockyard.rootfs.ownership import Ownership, OwnershipLedger
from dockyard.rootfs.scan import RACY_NS, scan

CHILD = textwrap.dedent("""
    import os, stat, sys
    root = sys.argv[1]
    os.chown(f"{root}/a", 5, 6)
    fd = os.open(f"{root}/b.tmp", os.O_WRONLY | os.O_CREAT, 0o755)  # dpkg: chown the new file, then rename it
    os.fchmod(fd, 0o4755)
    os.fchown(fd, 7, 8)
    os.close(fd)
    os.rename(f"{root}/b.tmp", f"{root}/b")
    os.chown(f"{root}/link", 9, 10, follow_symlinks=False)
    os.chown(f"{root}/a", -1, 11)  # keeps the uid just recorded
    os.mknod(f"{root}/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(f"{root}/fifo", stat.S_IFIFO | 0o640)
    for name, call in (("missing", lambda: os.chown(f"{root}/missing", 1, 1)),
                       ("exists", lambda: os.mknod(f"{root}/a", stat.S_IFCHR | 0o600, os.makedev(1, 5)))):
        try:
            call()
            print(name, "no error")
        except OSError as exc:
            print(name, exc.errno)
""")


@pytest.fixture
def root(tmp_path):
    if ownership_recorder.available() is not None:
        pytest.skip(f"seccomp user notification: {ownership_recorder.available()}")
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "a").write_text("a")
    os.symlink("/a", root / "link")  # absolute: resolved inside the root, never the host's /a
    return root


def _run_recorded(root, ledger: OwnershipLedger, uid: int = 0, gid: int = 0) -> subprocess.CompletedProcess:
    recorder = OwnershipRecorder(ledger, str(root), uid, gid)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True,
                             preexec_fn=recorder.listener.install)
    try:
        recorder.start()
        out, err = child.communicate(timeout=60)
    finally:
        recorder.stop()
    assert recorder.failure is None
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def test_chown_and_mknod_go_to_the_ledger_and_the_host_files_keep_their_owner(root):
    ledger = OwnershipLedger()
    time.sleep(RACY_NS / 1e9)
    before = scan(str(root), None, ledger=ledger).index
    host_owner = os.lstat(root / "a").st_uid, os.lstat(root / "a").st_gid

    result = _run_recorded(root, ledger)

    assert result.returncode == 0, result.stdout
    assert "missing 2" in result.stdout and "exists 17" in result.stdout  # ENOENT, EEXIST as the kernel says
    assert (os.lstat(root / "a").st_uid, os.lstat(root / "a").st_gid) == host_owner
    assert stat.S_ISREG(os.lstat(root / "dev/null").st_mode)  # a placeholder: the host user cannot mknod
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)  # made for real
    assert stat.S_IMODE(os.lstat(root / "b").st_mode) == 0o755  # chown cleared set-user-ID, as the kernel does

    changes = {c.rel: c.ownership for c in scan(str(root), before, ledger=ledger).changes}
    ledger.end_step()
    assert changes["a"] == Ownership(5, 11)  # unchanged on the host, changed in the image
    assert changes["b"] == Ownership(7, 8)  # recorded by inode under b.tmp, found under b
    assert changes["link"] == Ownership(9, 10)
    assert changes["dev/null"] == Ownership(0, 0, ("c", 1, 3))
    # After the step, the ledger holds them by path: the next step's snapshot still writes them.
    assert ledger.lookup(str(root / "b"), os.lstat(root / "b")) == Ownership(7, 8)


def test_a_step_user_that_is_not_root_may_not_give_files_away(root):
    ledger = OwnershipLedger()
    result = _run_recorded(root, ledger, uid=1000, gid=1000)
    # The first chown (a file that is root's in the image, to another owner) fails with EPERM.
    assert result.returncode != 0
    assert "PermissionError: [Errno 1]" in result.stderr and f"{root}/a" in result.stderr
    assert ledger.lookup(str(root / "a"), os.lstat(root / "a")) is None
