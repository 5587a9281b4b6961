"""RUN: resolved once with the stage's state (command, environment, user, working directory, network, mounts)
into a RunOp, which gives the step's cache inputs and executes the command in the stage's root through the
isolation backend; its changes (the upper directory) are the step's layer, committed by the executor.
`--mount` values are parsed by dockerfile/mounts.py and prepared by mounts.py; heredoc scripts come from
dockerfile/heredoc.py. This is where a RUN is executed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from ..cache.keys import tree_digest
from ..context import PatternMatcher
from ..dockerfile import instructions as ins
from ..dockerfile.heredoc import RunCommand, ScriptFile, run_command
from ..dockerfile.mounts import RunMount, parse_mount
from ..errors import DockerfileError, StepFailed
from ..isolation import RunSpec, SandboxMount
from ..rootfs import Step, mounted_readonly, mounted_step
from ..rootfs.overlay import overlay_mount
from ..rootfs.paths import resolve_in_root
from ..users import UnknownUser, resolve_user
from .mounts import (MountPreparer, PreparedMounts, make_hidden_mountpoints, make_stub_layer, needs_mountpoint,
                     remove_mountpoints)
from .source_filter import SourceFilter
from .sources import StageSources
from .state import DEFAULT_PATH, ArgScope, StageState
from .step import StepChanges, StepResources

# RUN --network: "host" is what dockyard's default already is (the step shares the builder's network
# namespace, as BuildKit's host mode does); only "none" isolates.
NETWORKS = ("default", "none", "host")


@dataclass(frozen=True)
class RunOp:
    """One RUN as the stage's state made it."""

    inst: ins.Run
    network: str
    command: RunCommand
    workdir: str
    mounts: tuple[RunMount, ...]
    user: str  # the config's USER ("" for root by default)
    # What expansion sees (ENV and the stage's ARGs) with a default PATH: in the cache key and the environment.
    env: tuple[tuple[str, str], ...]
    # The proxy build args, visible to the command (before `env`) but not in its cache key, as in BuildKit.
    proxy_env: tuple[tuple[str, str], ...] = ()
    platform: str | None = None  # the image's being built: a foreign CPU's step runs through QEMU

    def cache_inputs(self, sources: StageSources) -> dict[str, Any]:
        """What the RUN reads, for its cache key: the command (and heredoc scripts), the environment it sees (ENV
        and the stage's ARGs; the proxy build args are left out, as BuildKit leaves them out of its cache key),
        the user, working directory and network, and its mounts: each mount's options (a secret by its id, never
        its value; a cache mount by its id) and the content of bind-mount sources."""
        return {"instruction": "RUN", "argv": list(self.command.argv),
                "scripts": [[f.path, f.content, f.mode] for f in self.command.files],
                "env": sorted(self.env), "user": self.user, "workdir": self.workdir, "network": self.network,
                "flags": sorted([name, value] for name, value in self.inst.flags if name != "mount"),
                "mounts": [self._mount_inputs(sources, mount) for mount in self.mounts]}

    def _mount_inputs(self, sources: StageSources, mount: RunMount) -> dict[str, Any]:
        described = dataclasses.asdict(mount)
        if mount.type == "bind":
            if mount.from_:
                described["from_key"] = sources.key_of(self.inst, mount.from_)
            else:
                host = sources.context.resolve(mount.source)
                if os.path.lexists(host):
                    described["content"] = tree_digest(host, SourceFilter(sources.context, PatternMatcher([]), host),
                                                       sources.file_digests)
        return described

    def apply(self, step: StepResources) -> StepChanges:
        """Run the command; its changes are left in the upper directory `step.take_upper` gave."""
        # ARG values (and the proxy build args) are visible to RUN as environment variables, but not kept.
        run_env = dict(self.proxy_env)
        run_env.update(self.env)
        upper = step.take_upper()
        with ExitStack() as stack:
            prepared, stubs = _prepare_mounts(step, self.inst, self.mounts, stack) if self.mounts else (None, None)
            run_mounts = prepared.mounts if prepared else []
            in_root = [m for m in run_mounts if needs_mountpoint(m, run_mounts)]
            with _mounted_step(step, upper, stubs) as root:
                created = make_hidden_mountpoints(root.merged, in_root)
                try:
                    user = resolve_user(root.merged, self.user or "0")
                except UnknownUser as exc:
                    raise StepFailed(str(exc), hint="create the user in an earlier RUN, or use a numeric id") from None
                run_env.setdefault("HOME", user.home)
                if prepared:
                    run_env.update(prepared.env)
                    if prepared.agent_socket:
                        run_env.setdefault("SSH_AUTH_SOCK", prepared.agent_socket)
                mounts = [*_host_files(step, root.merged), *run_mounts, *_script_mounts(step, self.command.files)]
                spec = RunSpec(rootfs=root.merged, argv=tuple(self.command.argv), env=tuple(run_env.items()),
                               cwd=self.workdir, uid=user.uid, gid=user.gid, groups=user.groups,
                               network="none" if self.network == "none" else "default",
                               mounts=tuple(sorted(mounts, key=lambda m: m.target.count("/"))),
                               platform=self.platform)
                result = step.runner.run(spec, step.log)
            remove_mountpoints(upper, created)
        if result.setup_error or result.exit_code != 0:
            command = self.inst.command
            shown = " ".join(self.command.argv) if command.exec_form else command.shell_text
            if result.setup_error:
                message = f"RUN could not start: {result.setup_error}"
            else:
                message = f"RUN exited with {result.exit_code}: {shown}"
            tail = "\n".join("  | " + line for line in result.tail[-10:])
            raise StepFailed(message, details=tail or None,
                             hint="the lines above are the end of the command's output" if tail else None)
        # Without root, files the RUN made are the host user's only because they had to be: in the image they
        # are the step user's (directory roots only; see rootfs/scan.py).
        return StepChanges(upper, f"RUN {' '.join(self.command.argv)} # dockyard", run_as=(user.uid, user.gid))


def resolve_run(inst: ins.Run, state: StageState, scope: ArgScope) -> RunOp:
    """The RUN as the current stage state makes it: network mode, command, working directory, mounts, user and
    environment."""
    network = _network(inst)
    command = run_command(inst, state.shell, lambda text: state.expand(inst, text))
    workdir = state.workdir
    mounts = tuple(parse_mount(text, lambda value: state.expand(inst, value), workdir)
                   for text in inst.flag_values("mount"))
    env = state.expansion_env()
    env.setdefault("PATH", DEFAULT_PATH)
    return RunOp(inst, network, command, workdir, mounts, str(state.config.get("User") or ""),
                 tuple(env.items()), tuple(scope.proxy_env().items()), str(state.image.platform))


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


def _prepare_mounts(step: StepResources, inst: ins.Run, mounts: tuple[RunMount, ...],
                    stack: ExitStack) -> tuple[PreparedMounts, str | None]:
    """The step's --mount sources, and a stub layer with the mount points the image lacks (None if none)."""
    view = stack.enter_context(mounted_readonly(step.rootfs, step.workspace))
    prepared = MountPreparer(step.sources, step.mount_sources, inst, view, stack).prepare(list(mounts))
    in_root = [m for m in prepared.mounts if needs_mountpoint(m, prepared.mounts)]
    if not in_root:
        return prepared, None
    stubs = step.workspace.new_layer_dir()
    make_stub_layer(view, in_root, stubs)
    return prepared, stubs


@contextmanager
def _mounted_step(step: StepResources, upper: str, stubs: str | None) -> Iterator[Step]:
    """The stage's root with the step's upper directory, the workspace scaffold and, at the very bottom, the
    step's mount-point stubs."""
    ws = step.workspace
    if ws.trees is not None:  # a directory root: the runner binds what overlays and stubs provide here
        with mounted_step(step.rootfs, ws) as mounted:
            yield mounted
        return
    lowers = [*step.rootfs.lowers(ws, scaffold=True), *([stubs] if stubs else [])]
    with overlay_mount(lowers, ws.new_mountpoint(), upper, ws.new_work_dir(), volatile=True) as merged:
        yield Step(merged=merged, upper=upper)


def _host_files(step: StepResources, root: str) -> list[SandboxMount]:
    """resolv.conf and hosts from the host, bound read-only over the image's (private copies, so a RUN
    cannot change the host's), only where the image has a regular file or nothing there."""
    mounts = []
    for source, target in ((step.resolv_conf, "/etc/resolv.conf"), (step.hosts, "/etc/hosts")):
        if not source:
            continue
        host_target = resolve_in_root(root, target, follow_final=False)
        if os.path.islink(host_target) or not os.path.isfile(host_target):
            continue  # a symlink or something odd: leave the image's own
        mounts.append(SandboxMount(target=target, source=source, readonly=True, file=True))
    return mounts


def _script_mounts(step: StepResources, files: tuple[ScriptFile, ...]) -> list[SandboxMount]:
    """Heredoc scripts, written in the workspace and bound read-only (under /dev, never in the layer)."""
    mounts = []
    for script in files:
        directory = step.workspace.new_file_dir()
        path = os.path.join(directory, "script")
        with open(path, "w", encoding="utf-8") as out:
            out.write(script.content)
        os.chmod(path, script.mode)
        mounts.append(SandboxMount(target=script.path, source=path, readonly=True, file=True))
    return mounts
