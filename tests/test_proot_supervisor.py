"""The proot supervisor (core/isolation/proot_supervisor.py) against the real kernel: a child process runs
under its seccomp filter and calls chown, fchown, lchown, fchownat and mknod on a directory root; the supervisor
answers them, the host files keep their owner, and the scan of the root carries what the image gets.

proot is left out here (tests/e2e/test_execution_modes.py builds through it): without it the child's paths
are already host paths, which is what proot hands the filter after translating them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from dockyard.isolation import proot_supervisor
from dockyard.isolation.proot_supervisor import ProotSupervisor
from dockyard.rootfs.ownership import Ownership, OwnershipLedger
from dockyard.rootfs.scan import RACY_NS, scan
from tests.support.users import open_directory

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
    # What the step reads back: newfstatat through Python, statx through coreutils' stat.
    st = os.stat(f"{root}/a")
    print("view a", st.st_uid, st.st_gid)
    st = os.stat(f"{root}/dev/null")
    print("view null", stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev))
    sys.stdout.flush()
    os.system(f"stat -c 'statx %u %g %F %t,%T' {root}/link {root}/dev/null")
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
    if proot_supervisor.available() is not None:
        pytest.skip(f"seccomp user notification: {proot_supervisor.available()}")
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "a").write_text("a")
    os.symlink("/a", root / "link")  # absolute: resolved inside the root, never the host's /a
    return root


def _run_recorded(root, ledger: OwnershipLedger, uid: int = 0, gid: int = 0) -> subprocess.CompletedProcess:
    supervisor = ProotSupervisor(str(root), ledger, uid, gid)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True,
                             preexec_fn=supervisor.listener.install)
    try:
        supervisor.start()
        out, err = child.communicate(timeout=60)
    finally:
        supervisor.stop()
    assert supervisor.failure is None
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def test_chown_and_mknod_go_to_the_ledger_and_the_host_files_keep_their_owner(root):
    ledger = OwnershipLedger()
    time.sleep(RACY_NS / 1e9)
    before = scan(str(root), None, ledger=ledger).index
    host_owner = os.lstat(root / "a").st_uid, os.lstat(root / "a").st_gid

    result = _run_recorded(root, ledger)

    assert result.returncode == 0, result.stdout
    assert "missing 2" in result.stdout and "exists 17" in result.stdout  # ENOENT, EEXIST as the kernel says
    assert "view a 5 11" in result.stdout and "view null True 1 3" in result.stdout
    assert "statx 9 10 symbolic link" in result.stdout and "statx 0 0 character special file 1,3" in result.stdout
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


@pytest.mark.parametrize("as_user", [None, 65534], ids=["root", "unprivileged"])
def test_statx_works_under_proot_for_guest_paths(as_user):
    """Debian's proot 5.1 passes statx's path untranslated; the supervisor answers ENOSYS and glibc falls back
    to newfstatat, which proot translates. The host's coreutils `stat` (which calls statx) looks at a file only
    the root has, through ProotRunner as a root builder and as a user without subordinate ids."""
    if proot_supervisor.available() is not None or shutil.which("proot") is None:
        pytest.skip("needs proot and seccomp user notification")
    with open_directory("dockyard-statx-") as shared:
        root = shared / "root"
        (root / "tmp").mkdir(parents=True)
        (root / "only-here").write_text("x")
        if as_user is not None:
            for path in (root, root / "tmp", root / "only-here"):
                os.chown(path, as_user, as_user)
        script = textwrap.dedent(f"""
            import os, sys
            sys.path[:0] = {sys.path!r}
            from dockyard.isolation import RunSpec, SandboxMount
            from dockyard.isolation.proot import ProotRunner
            from dockyard.rootfs import ownership
            binds = tuple(SandboxMount(target=p, source=p) for p in ("/usr", "/lib", "/lib64", "/bin")
                          if os.path.isdir(p))
            spec = RunSpec(rootfs={str(root)!r}, argv=("/usr/bin/stat", "-c", "%n %s %F", "/only-here"),
                           env=(("PATH", "/usr/bin:/bin"),), mounts=binds)
            with ownership.recording(ownership.OwnershipLedger()):
                result = ProotRunner().run(spec, print)
            sys.exit(result.exit_code)
        """)
        user = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups"] if as_user else []
        done = subprocess.run([*user, sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              cwd="/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/only-here 1 regular file" in done.stdout


STEP = """
import os
print("access", os.access("/only-here", os.R_OK, effective_ids=True))  # glibc: faccessat2 first
os.setgroups([65534])
os.setresgid(65534, 65534, 65534)
os.setresuid(42, 42, 42)  # as apt's download methods do: the process is no longer dumpable
print("as 42", open("/only-here").read())
"""


@pytest.mark.parametrize("drop", [False, True], ids=["root", "root-without-cap-sys-ptrace"])
def test_a_root_step_under_proot_sees_its_root_through_access_and_setuid(drop):
    """faccessat2 would get past proot 5.1 to the host, where /only-here does not exist (the supervisor answers
    ENOSYS); a step that switches uids cannot be traced further without CAP_SYS_PTRACE, and its open fails
    with EFAULT (the runner then emulates ids). clone3 is tested by npm in tests/e2e/test_package_managers.py:
    CPython's threads came through proot either way."""
    if proot_supervisor.available() is not None or shutil.which("proot") is None or os.geteuid() != 0:
        pytest.skip("needs root, proot and seccomp user notification")
    with open_directory("dockyard-proot-step-") as shared:
        root = shared / "root"
        (root / "tmp").mkdir(parents=True)
        (root / "only-here").write_text("x")
        script = textwrap.dedent(f"""
            import os, sys
            sys.path[:0] = {sys.path!r}
            from dockyard.isolation import RunSpec, SandboxMount
            from dockyard.isolation.proot import ProotRunner
            binds = tuple(SandboxMount(target=p, source=p) for p in ("/usr", "/lib", "/lib64", "/bin")
                          if os.path.isdir(p))
            spec = RunSpec(rootfs={str(root)!r}, argv=("/usr/bin/python3", "-c", {STEP!r}),
                           env=(("PATH", "/usr/bin:/bin"),), mounts=binds)
            sys.exit(ProotRunner().run(spec, print).exit_code)
        """)
        command = [sys.executable, "-c", script]
        if drop:
            command = ["capsh", "--drop=cap_sys_ptrace", "--", "-c", " ".join(map(shlex.quote, command))]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "access True" in done.stdout and "as 42 x" in done.stdout


OWN_UID_STEP = """
import os
for name in ("/f-root", "/f-app", "/f-new"):
    open(name, "w").close()
os.chown("/f-root", 0, 0)
os.chown("/f-app", 1000, 1000)
print("ids", os.getuid(), os.getgid())
for name in ("/f-root", "/f-app", "/f-new"):
    st = os.stat(name)
    print(name, st.st_uid, st.st_gid)
"""


def test_a_builder_of_uid_1000_tells_chown_to_its_own_uid_from_chown_to_root():
    """proot `-0` swaps the step's id 0 with proot's own uid in chown and stat; the filter makes that uid one no
    file has (SENTINEL_ID), so through ProotRunner, as uid 1000 with a ledger, chown 0 and chown 1000 are
    recorded as they were asked and the step reads them back, while its getuid still says 0."""
    if proot_supervisor.available() is not None or shutil.which("proot") is None:
        pytest.skip("needs proot and seccomp user notification")
    with open_directory("dockyard-own-uid-") as shared:
        root = shared / "root"
        (root / "tmp").mkdir(parents=True)
        for path in (root, root / "tmp"):
            os.chown(path, 1000, 1000)
        script = textwrap.dedent(f"""
            import os, sys
            sys.path[:0] = {sys.path!r}
            from dockyard.isolation import RunSpec, SandboxMount
            from dockyard.isolation.proot import ProotRunner
            from dockyard.rootfs import ownership
            binds = tuple(SandboxMount(target=p, source=p) for p in ("/usr", "/lib", "/lib64", "/bin")
                          if os.path.isdir(p))
            spec = RunSpec(rootfs={str(root)!r}, argv=("/usr/bin/python3", "-c", {OWN_UID_STEP!r}),
                           env=(("PATH", "/usr/bin:/bin"),), mounts=binds)
            ledger = ownership.OwnershipLedger()
            with ownership.recording(ledger):
                result = ProotRunner().run(spec, print)
            for name in ("f-root", "f-app", "f-new"):
                print("ledger", name, ledger.lookup_inode(os.lstat(os.path.join({str(root)!r}, name))))
            sys.exit(result.exit_code)
        """)
        done = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", sys.executable, "-c",
                               script], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "ids 0 0" in lines
    assert {"/f-root 0 0", "/f-app 1000 1000", "/f-new 0 0"} <= set(lines), done.stdout
    assert "ledger f-root Ownership(uid=0, gid=0, device=None, xattrs=())" in lines
    assert "ledger f-app Ownership(uid=1000, gid=1000, device=None, xattrs=())" in lines
    assert "ledger f-new None" in lines  # the step user's, as the snapshot says (no chown)


def test_the_filter_answers_getuid_and_getgid_with_an_id_no_file_has(root):
    """What proot itself reads with getuid/getgid under the filter, without proot: SENTINEL_ID; geteuid is
    left alone."""
    ledger = OwnershipLedger()
    supervisor = ProotSupervisor(str(root), ledger)
    child = subprocess.Popen([sys.executable, "-c", "import os; print(os.getuid(), os.getgid(), os.geteuid())"],
                             stdout=subprocess.PIPE, text=True, preexec_fn=supervisor.listener.install)
    try:
        supervisor.start()
        out, _ = child.communicate(timeout=60)
    finally:
        supervisor.stop()
    sentinel = proot_supervisor.SENTINEL_ID
    assert out.split() == [str(sentinel), str(sentinel), str(os.geteuid())]
    assert sentinel == 4294967293
