"""RUN: the step's command executed in the stage's root through the isolation backend; its changes (the
overlay upper directory) become the step's layer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import events as ev
from .dockerfile import instructions as ins
from .errors import DockerfileError, StepFailed
from .image.model import Layer
from .isolation import RunSpec
from .rootfs import mounted_step
from .rootfs.paths import resolve_in_root
from .users import UnknownUser, resolve_user

if TYPE_CHECKING:
    from .executor import StageExecutor

def execute_run(executor: StageExecutor, inst: ins.Run) -> Layer:
    for name in ("mount", "security"):
        if inst.flag(name) is not None:
            raise DockerfileError(f"RUN --{name} is not supported yet",
                                  hint="it is planned; remove the flag for now")
    network = inst.flag("network") or "default"
    if network not in ("default", "none", "host"):
        raise DockerfileError(f"invalid RUN --network={network}: use default, none or host")
    argv = inst.command.argv(executor.shell)
    env = executor.env_dict()
    # ARG values are visible to RUN as environment variables, but are not kept in the image.
    run_env = {**executor.args, **env}
    run_env.setdefault("PATH", executor.default_path)
    config = executor.image.container_config
    upper = executor._take_upper()
    with mounted_step(executor.rootfs, executor.s.workspace, upper=upper, scaffold=True) as step:
        try:
            user = resolve_user(step.merged, config.get("User") or "0")
        except UnknownUser as exc:
            raise StepFailed(str(exc), hint="create the user in an earlier RUN, or use a numeric id") from None
        run_env.setdefault("HOME", user.home)
        spec = RunSpec(rootfs=step.merged, argv=tuple(argv), env=tuple(run_env.items()),
                       cwd=config.get("WorkingDir") or "/", uid=user.uid, gid=user.gid,
                       groups=user.groups, network="none" if network == "none" else "default",
                       binds=_host_files(executor, step.merged))
        step_no = executor.s.steps[-1].step
        result = executor.s.runner.run(spec, lambda line: executor.s.events.emit(ev.StepLog(step=step_no, line=line)))
    if result.setup_error or result.exit_code != 0:
        shown = " ".join(argv) if inst.command.exec_form else inst.command.shell_text
        if result.setup_error:
            message = f"RUN could not start: {result.setup_error}"
        else:
            message = f"RUN exited with {result.exit_code}: {shown}"
        tail = "\n".join("  | " + line for line in result.tail[-10:])
        raise StepFailed(message, details=tail or None,
                         hint="the lines above are the end of the command's output" if tail else None)
    return executor._commit(upper, f"RUN {' '.join(argv)} # dockyard")

def _host_files(executor: StageExecutor, root: str) -> tuple[tuple[str, str, bool], ...]:
    """resolv.conf and hosts from the host, bound read-only over the image's (private copies, so a RUN
    cannot change the host's), only where the image has a regular file or nothing there."""
    binds = []
    for source, target in ((executor.s.resolv_conf, "/etc/resolv.conf"), (executor.s.hosts, "/etc/hosts")):
        if not source:
            continue
        host_target = resolve_in_root(root, target, follow_final=False)
        if os.path.islink(host_target) or not os.path.isfile(host_target):
            continue  # a symlink or something odd: leave the image's own
        binds.append((source, target, True))
    return tuple(binds)

