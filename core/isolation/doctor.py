"""`dockyard doctor`: what detect.py found in this environment, what each finding means for builds, and the
execution mode a build would pick (or why none can run)."""

from __future__ import annotations

from ..errors import IsolationError
from . import emulation, ids, landlock, proot_supervisor
from .detect import Environment, Mode, choose

# What a build in each mode keeps and loses, in the words a user needs to decide whether that is enough.
MODE_EFFECTS = {
    "namespaces": [
        "RUN runs in its own mount, pid, ipc and uts namespaces (network too with --network=none), with",
        "docker's default capabilities; snapshots are overlay upper directories; owners, setuid bits and",
        "device nodes are exactly what the steps made.",
    ],
    "userns": [
        "the build re-enters itself as root of a user namespace (0 = you, 1.. = your subordinate ids) and",
        "then runs as in the namespaces mode: RUN chown is real, for image ids up to the range's size; files",
        "in the cache it makes there belong to your subordinate ids on this host.",
    ],
    "proot": [
        "RUN runs through proot (ptrace): no pid, network or IPC namespace of its own, and",
        "--network=none is refused; snapshots are made by scanning the root (stat data, hashing only what",
        "stat cannot tell).",
    ],
}
# What a proot build keeps of the step's confinement, by whether Landlock and seccomp user notification work.
PROOT_CONFINED = [
    "a Landlock domain keeps each step out of the builder's and the job's processes (their environment,",
    "memory, open files and root through /proc) and out of every file outside its root, mounts, /dev, /proc,",
    "/sys and the system's libraries; other processes' command lines stay visible.",
]
PROOT_UNCONFINED = [
    "without Landlock, a step can read what any process of the builder's uid can: the job's environment",
    "through /proc/PID/environ (registry passwords, tokens) and its files (a non-root builder hides its own",
    "/proc entries by making itself not dumpable).",
]
PROOT_PROCESSES = [
    "when a step's command exits, the processes it left are killed (seccomp user notification tracks them);",
    "a reaper ends them if the builder itself is killed.",
]
PROOT_PROCESSES_UNTRACKED = [
    "seccomp user notification is refused: a step whose command leaves processes running waits for them.",
]
GROUPS_DENIED = [
    "setgroups is denied (a user namespace with one mapped id): RUN steps run without their user's",
    "supplementary groups (files only a supplementary group may read or write stay closed to them).",
]
NON_ROOT_PROOT = [
    "not root: proot shows the step the ids it expects; its chown, mknod and stat are answered by dockyard",
    "through seccomp user notification, recorded in the image and shown back to the step (files stay yours",
    "on this host). A chown to your own uid cannot be told from one to root there (proot swaps them) and is",
    "recorded as root.",
]
NON_ROOT_PROOT_UNRECORDED = [
    "not root, and RUN's chown cannot be recorded here: chown and mknod in RUN have no effect (proot -0",
    "pretends), so files a RUN makes belong to the step's user in the image; COPY --chown, base-image owners",
    "and device nodes are kept as the image says.",
]


def _yes(flag: bool, yes: str, no: str) -> str:
    return yes if flag else no


def findings(env: Environment, work_dir: str, notify_refused: str | None) -> list[tuple[str, str, str]]:
    """(what, found, what it means) for each probe; `notify_refused` is why seccomp user notification does not
    work here (proot_supervisor.available), or None."""
    subordinate = env.subordinates
    landlock_abi = landlock.abi()
    limit = "unknown" if env.max_user_namespaces is None else str(env.max_user_namespaces)
    return [
        ("user", f"uid {env.euid}" + _yes(env.euid == 0, " (root)", " (not root)")
         + _yes(env.in_user_namespace, ", in a user namespace", ""),
         _yes(env.euid == 0, "may own every file and id the image uses",
              "cannot own other users' files: needs a user namespace or proot")),
        ("CAP_SYS_ADMIN", _yes(env.cap_sys_admin, "yes", "no"),
         _yes(env.cap_sys_admin, "may mount (overlay roots, RUN --mount)", "no mounts outside a user namespace")),
        ("mount namespace", _yes(env.mount_namespace, "allowed", "refused"),
         _yes(env.mount_namespace, "RUN can get namespaces of its own", "RUN needs proot here")),
        ("overlayfs", _yes(env.overlayfs, f"mounts in {work_dir}", "cannot be mounted"),
         _yes(env.overlayfs, "snapshots are overlay upper directories",
              "snapshots are made by scanning directory roots")),
        ("user namespaces", _yes(env.user_namespace, "allowed", "refused") + f" (max_user_namespaces={limit})",
         _yes(env.user_namespace, "a non-root user with subordinate ids can build as root of one",
              "a non-root user builds through proot")),
        ("subordinate ids", f"uids {subordinate.uids.start}+{subordinate.uids.count}, gids "
         f"{subordinate.gids.start}+{subordinate.gids.count}" if subordinate else "none for this user",
         "from /etc/subuid and /etc/subgid: the ids a user namespace maps" if subordinate else
         "a user namespace could map this user alone: RUN chown would fail"),
        ("newuidmap/newgidmap", _yes(env.id_map_tools, "installed", "missing"),
         _yes(env.id_map_tools, "can write a user namespace's id maps", "install Debian's uidmap package")),
        ("seccomp", env.seccomp, {"filter": "a filter applies (a container's default profile blocks unshare "
                                            "and mount)", "disabled": "no system call filter",
                                  "strict": "only read/write/exit: builds cannot run"}.get(env.seccomp, "unknown")),
        ("seccomp user notification", _yes(notify_refused is None, "works", notify_refused or ""),
         _yes(notify_refused is None, "through proot, statx works and a non-root build records RUN's chown",
              "through proot, statx fails (coreutils ls -l, stat) and a non-root build loses RUN's chown")),
        ("proot", env.proot or "missing",
         _yes(env.proot is not None, "RUN can run without any privilege", "install Debian's proot package")),
        ("Landlock", f"ABI {landlock_abi}" if isinstance(landlock_abi, int) else landlock_abi,
         _yes(isinstance(landlock_abi, int), "proot steps are kept out of other processes and outside files",
              "proot steps can read other processes' environment")),
        ("setgroups", _yes(ids.setgroups_allowed(), "allowed", "denied"),
         _yes(ids.setgroups_allowed(), "RUN steps get their user's supplementary groups",
              "RUN steps run without supplementary groups")),
    ]


def report(env: Environment, work_dir: str, wanted: str = "auto") -> tuple[list[str], bool]:
    """The report's lines, and whether a build can run."""
    # Probed here, not by every build: only the proot runs use it, and they say so when it is refused.
    notify_refused = proot_supervisor.available()
    rows = findings(env, work_dir, notify_refused)
    width = max(len(what) for what, _, _ in rows)
    found_width = max(len(found) for _, found, _ in rows)
    lines = ["dockyard doctor: what this environment allows for builds", ""]
    lines += [f"  {what:<{width}}  {found:<{found_width}}  {meaning}" for what, found, meaning in rows]
    lines.append("")
    try:
        mode: Mode = choose(env, wanted)
    except IsolationError as exc:
        lines += [f"mode: none: {exc.message}"] + ([f"hint: {exc.hint}"] if exc.hint else [])
        return lines, False
    lines.append(f"mode: {mode.name} ({mode.reason})")
    lines += ["  " + line for line in MODE_EFFECTS[mode.name]]
    if mode.name == "proot":
        effects = PROOT_CONFINED if isinstance(landlock.abi(), int) else PROOT_UNCONFINED
        effects += PROOT_PROCESSES if notify_refused is None else PROOT_PROCESSES_UNTRACKED
        lines += ["  " + line for line in effects]
    if mode.name == "proot" and env.euid != 0:
        effects = NON_ROOT_PROOT if notify_refused is None else NON_ROOT_PROOT_UNRECORDED
        lines += ["  " + line for line in effects]
    if not ids.setgroups_allowed():
        lines += ["  " + line for line in GROUPS_DENIED]
    return lines + [""] + platform_lines(mode.name), True


def platform_lines(mode: str) -> list[str]:
    """Each platform (--platform) and how its RUN steps run in `mode`: natively, through QEMU by binfmt_misc
    (registered, or registered by the build), through proot -q QEMU, or not at all and why."""
    found = emulation.survey(mode)
    width = max(len(entry.platform) for entry in found)
    lines = [f"platforms (how RUN steps for each run in the {mode} mode):"]
    for entry in found:
        text = {"native": entry.detail, "binfmt": f"QEMU through {entry.detail}",
                "register": f"QEMU through {entry.detail}",
                "proot": f"QEMU through {entry.detail}"}.get(entry.how, f"unavailable: {entry.detail}")
        lines.append(f"  {entry.platform:<{width}}  {text}")
        if entry.hint and not entry.runs:
            lines.append(f"  {'':<{width}}  hint: {entry.hint}")
    return lines
