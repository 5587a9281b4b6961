"""RUN: the step's command executed in the stage's root through the isolation backend; its changes (the
overlay upper directory) become the step's layer. `--mount` sources are prepared by mounts.py; heredoc
scripts come from dockerfile/heredoc.py."""

from __future__ import annotations

import dataclasses
import os
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Iterator

from . import events as ev
from .cache.keys import tree_digest
from .dockerfile import instructions as ins
from .dockerfile.heredoc import RunCommand, ScriptFile, run_command
from .errors import DockerfileError, StepFailed
from .image.model import Layer
from .isolation import RunSpec, SandboxMount
from .mounts import (MountPreparer, MountSpec, PreparedMounts, make_hidden_mountpoints, make_stub_layer,
                     needs_mountpoint, parse_mount, remove_mountpoints)
from .rootfs import Step, mounted_readonly, mounted_step
from .rootfs.overlay import overlay_mount
from .rootfs.paths import resolve_in_root
from .users import UnknownUser, resolve_user

if TYPE_CHECKING:
    from .executor import StageExecutor

# RUN --network: "host" is what dockyard's default already is (the step shares the builder's network
# namespace, as BuildKit's host mode does); only "none" isolates.
NETWORKS = ("default", "none", "host")


def _read_step(executor: StageExecutor, inst: ins.Run) -> tuple[str, RunCommand, str, list[MountSpec]]:
    """The RUN as the current stage state makes it: network mode, command, working directory, mounts."""
    network = _network(inst)
    command = run_command(inst, executor.shell, lambda text: executor.expand(inst, text))
    workdir = executor.image.container_config.get("WorkingDir") or "/"
    specs = [parse_mount(text, lambda value: executor.expand(inst, value), workdir)
             for text in inst.flag_values("mount")]
    return network, command, workdir, specs


def execute_run(executor: StageExecutor, inst: ins.Run) -> Layer:
    network, command, workdir, specs = _read_step(executor, inst)
    config = executor.image.container_config
    # ARG values (and the proxy build args) are visible to RUN as environment variables, but not kept.
    run_env = executor.step_env()
    run_env.setdefault("PATH", executor.default_path)
    upper = executor._take_upper()
    with ExitStack() as stack:
        prepared, stubs = _prepare_mounts(executor, inst, specs, stack) if specs else (None, None)
        run_mounts = prepared.mounts if prepared else []
        in_root = [m for m in run_mounts if needs_mountpoint(m, run_mounts)]
        with _mounted_step(executor, upper, stubs) as step:
            created = make_hidden_mountpoints(step.merged, in_root)
            try:
                user = resolve_user(step.merged, config.get("User") or "0")
            except UnknownUser as exc:
                raise StepFailed(str(exc), hint="create the user in an earlier RUN, or use a numeric id") from None
            run_env.setdefault("HOME", user.home)
            if prepared:
                run_env.update(prepared.env)
                if prepared.agent_socket:
                    run_env.setdefault("SSH_AUTH_SOCK", prepared.agent_socket)
            mounts = [*_host_files(executor, step.merged), *run_mounts,
                      *_script_mounts(executor, command.files)]
            spec = RunSpec(rootfs=step.merged, argv=tuple(command.argv), env=tuple(run_env.items()),
                           cwd=workdir, uid=user.uid, gid=user.gid, groups=user.groups,
                           network="none" if network == "none" else "default",
                           mounts=tuple(sorted(mounts, key=lambda m: m.target.count("/"))))
            step_no = executor.s.steps[-1].step
            result = executor.s.runner.run(spec, lambda line: executor.s.events.emit(ev.StepLog(step=step_no,
                                                                                                line=line)))
        remove_mountpoints(upper, created)
    if result.setup_error or result.exit_code != 0:
        shown = " ".join(command.argv) if inst.command.exec_form else inst.command.shell_text
        if result.setup_error:
            message = f"RUN could not start: {result.setup_error}"
        else:
            message = f"RUN exited with {result.exit_code}: {shown}"
        tail = "\n".join("  | " + line for line in result.tail[-10:])
        raise StepFailed(message, details=tail or None,
                         hint="the lines above are the end of the command's output" if tail else None)
    # Without root, files the RUN made are the host user's only because they had to be: in the image they are
    # the step user's (directory roots only; see rootfs/scan.py).
    return executor._commit(upper, f"RUN {' '.join(command.argv)} # dockyard", run_as=(user.uid, user.gid))


def _network(inst: ins.Run) -> str:
    security = inst.flag("security")
    if security == "insecure":
        raise DockerfileError("RUN --security=insecure needs the security.insecure entitlement, which dockyard "
                              "does not grant", hint="remove the flag: steps run with docker's default privileges")
    if security not in (None, "sandbox"):
        raise DockerfileError(f"invalid RUN --security={security}: use sandbox or insecure")
    network = inst.flag("network") or "default"
    if network not in NETWORKS:
        raise DockerfileError(f"invalid RUN --network={network}", hint="use default, none or host")
    return network


def _prepare_mounts(executor: StageExecutor, inst: ins.Run, specs: list[MountSpec],
                    stack: ExitStack) -> tuple[PreparedMounts, str | None]:
    """The step's --mount sources, and a stub layer with the mount points the image lacks (None if none)."""
    view = stack.enter_context(mounted_readonly(executor.rootfs, executor.s.workspace))
    prepared = MountPreparer(executor, inst, view, stack).prepare(specs)
    in_root = [m for m in prepared.mounts if needs_mountpoint(m, prepared.mounts)]
    if not in_root:
        return prepared, None
    stubs = executor.s.workspace.new_layer_dir()
    make_stub_layer(view, in_root, stubs)
    return prepared, stubs


@contextmanager
def _mounted_step(executor: StageExecutor, upper: str, stubs: str | None) -> Iterator[Step]:
    """The stage's root with the step's upper directory, the workspace scaffold and, at the very bottom, the
    step's mount-point stubs."""
    ws = executor.s.workspace
    if ws.trees is not None:  # a directory root: the runner binds what overlays and stubs provide here
        with mounted_step(executor.rootfs, ws) as step:
            yield step
        return
    lowers = [*executor.rootfs.lowers(ws, scaffold=True), *([stubs] if stubs else [])]
    with overlay_mount(lowers, ws.new_mountpoint(), upper, ws.new_work_dir(), volatile=True) as merged:
        yield Step(merged=merged, upper=upper)


def _host_files(executor: StageExecutor, root: str) -> list[SandboxMount]:
    """resolv.conf and hosts from the host, bound read-only over the image's (private copies, so a RUN
    cannot change the host's), only where the image has a regular file or nothing there."""
    mounts = []
    for source, target in ((executor.s.resolv_conf, "/etc/resolv.conf"), (executor.s.hosts, "/etc/hosts")):
        if not source:
            continue
        host_target = resolve_in_root(root, target, follow_final=False)
        if os.path.islink(host_target) or not os.path.isfile(host_target):
            continue  # a symlink or something odd: leave the image's own
        mounts.append(SandboxMount(target=target, source=source, readonly=True, file=True))
    return mounts


def _script_mounts(executor: StageExecutor, files: tuple[ScriptFile, ...]) -> list[SandboxMount]:
    """Heredoc scripts, written in the workspace and bound read-only (under /dev, never in the layer)."""
    mounts = []
    for script in files:
        directory = executor.s.workspace.new_file_dir()
        path = os.path.join(directory, "script")
        with open(path, "w", encoding="utf-8") as out:
            out.write(script.content)
        os.chmod(path, script.mode)
        mounts.append(SandboxMount(target=script.path, source=path, readonly=True, file=True))
    return mounts


def run_cache_inputs(executor: StageExecutor, inst: ins.Run) -> dict:
    """What a RUN reads, for its cache key: the command (and heredoc scripts), the environment it sees (ENV and
    the stage's ARGs; the proxy build args are left out, as BuildKit leaves them out of its cache key), the user,
    working directory and network, and its mounts: each mount's options (a secret by its id, never its value; a
    cache mount by its id) and the content of bind-mount sources."""
    network, command, workdir, specs = _read_step(executor, inst)
    config = executor.image.container_config
    env = executor.expansion_env()
    env.setdefault("PATH", executor.default_path)
    return {"instruction": "RUN", "argv": list(command.argv),
            "scripts": [[f.path, f.content, f.mode] for f in command.files], "env": sorted(env.items()),
            "user": config.get("User") or "", "workdir": workdir, "network": network,
            "flags": sorted([name, value] for name, value in inst.flags if name != "mount"),
            "mounts": [_mount_inputs(executor, inst, spec) for spec in specs]}


def _mount_inputs(executor: StageExecutor, inst: ins.Run, spec: MountSpec) -> dict:
    described = dataclasses.asdict(spec)
    if spec.type == "bind":
        if spec.from_:
            from .copy_step import _from_key

            described["from_key"] = _from_key(executor, inst, spec.from_)
        else:
            from .copy_step import SourceFilter
            from .context import PatternMatcher

            host = executor.s.context.resolve(spec.source)
            if os.path.lexists(host):
                described["content"] = tree_digest(host, SourceFilter(executor.s.context, PatternMatcher([]), host),
                                                   executor.s.file_digests)
    return described
