"""Dockerfile instruction semantics, checked without containers or a root filesystem.

As buildah's imagebuilder tests do with a recording executor, a RecordingStage drives a stage's instructions
through what the stage executor does before any filesystem work: each instruction is resolved once with the
stage's state (dockyard.stage.ops.resolve); a config-only operation gives the next state, a RUN or COPY/ADD
is recorded with the cache inputs that same resolution gives (nothing runs, nothing is copied). The build
context is a real directory; no mock stands in for anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.context import BuildContext, DockerIgnore
from dockyard.dockerfile.parser import parse_dockerfile
from dockyard.errors import DockerfileError
from dockyard.image.model import Image, Platform
from dockyard.plan import global_arg_values, predefined_args
from dockyard.rootfs import Workspace
from dockyard.stage.ops import ArgOp, resolve
from dockyard.stage.run import RunOp
from dockyard.stage.sources import StageSources
from dockyard.stage.state import ArgScope, StageState
from dockyard.stage.step import LayerOp


class RecordingStage:
    """One stage (the last of `text`) resolved instruction by instruction; RUN and COPY/ADD are recorded as
    (operation, cache inputs) in `steps`, every config-only instruction's history text in `history`."""

    def __init__(self, text: str, tmp_path: Path, *, build_args: dict[str, str] | None = None,
                 base: Image | None = None) -> None:
        self.dockerfile = parse_dockerfile(text, "Dockerfile")
        self.used_args: set[str] = set()
        build_args = build_args or {}
        predefined = predefined_args(Platform(), Platform(), "")
        global_args = global_arg_values(self.dockerfile, build_args, self.used_args, predefined)
        self.scope = ArgScope(build_args, global_args)
        context_dir = tmp_path / "context"
        context_dir.mkdir(exist_ok=True)
        self.context_dir = context_dir
        stage = self.dockerfile.stages[-1]
        self.sources = StageSources(context=BuildContext(context_dir, DockerIgnore([])),
                                    dockerfile=self.dockerfile, stage_index=stage.index, stages={},
                                    workspace=Workspace(tmp_path / "workspace"))
        self.state = StageState.start(base or Image(), self.dockerfile.escape)
        self.steps: list[tuple[LayerOp, dict[str, Any] | None]] = []
        self.history: list[str] = []

    def run(self) -> RecordingStage:
        for inst in self.dockerfile.stages[-1].instructions:
            op = resolve(inst, self.state, self.scope)
            if isinstance(op, LayerOp):
                self.steps.append((op, op.cache_inputs(self.sources)))
                continue
            if isinstance(op, ArgOp):
                self.used_args.update(op.used)
            self.state = op.apply(self.state)
            self.history.append(op.created_by)
        return self

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.state.image.container_config)

    def env(self) -> dict[str, str]:
        return self.state.env_dict()

    def run_ops(self) -> list[RunOp]:
        return [op for op, _ in self.steps if isinstance(op, RunOp)]

    def inputs(self, index: int = -1) -> dict[str, Any] | None:
        return self.steps[index][1]


def stage(text: str, tmp_path: Path, **kwargs: Any) -> RecordingStage:
    return RecordingStage(text, tmp_path, **kwargs).run()


def run_env(stage_: RecordingStage, index: int = -1) -> dict[str, str]:
    op = stage_.run_ops()[index]
    return {**dict(op.proxy_env), **dict(op.env)}


# --- ARG and ENV -------------------------------------------------------------------------------------------
def test_build_arg_overrides_an_arg_default_and_is_recorded_as_used(tmp_path):
    s = stage("FROM scratch\nARG A=default\nARG B=kept\nRUN echo $A $B\n", tmp_path, build_args={"A": "given"})
    assert run_env(s)["A"] == "given" and run_env(s)["B"] == "kept"
    assert s.used_args == {"A"}
    assert s.history == ["ARG A=given", "ARG B=kept"]


def test_args_stay_out_of_the_image_config(tmp_path):
    s = stage("FROM scratch\nARG A=1\nRUN true\n", tmp_path)
    assert "A=1" not in s.config["Env"]
    assert s.config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_arg_default_sees_the_names_declared_before_it_on_the_same_line(tmp_path):
    s = stage("FROM scratch\nARG A=1 B=${A}2\nRUN true\n", tmp_path)
    assert run_env(s)["B"] == "12"


def test_the_later_of_arg_and_env_wins(tmp_path):
    # An ARG declared after an ENV of the same name wins; an ENV declared after the ARG wins over it.
    s = stage("FROM scratch\nENV V=env\nARG V=arg\nRUN echo $V\nENV V=env2\nRUN echo $V\n", tmp_path)
    first, second = s.run_ops()
    assert dict(first.env)["V"] == "arg"
    assert dict(second.env)["V"] == "env2"
    assert s.env()["V"] == "env2"


def test_an_arg_after_an_inherited_env_wins_for_expansion_but_not_in_the_config(tmp_path):
    base = Image(container_config={"Env": ["PATH=/bin", "V=base"]})
    s = stage("FROM base\nARG V=arg\nLABEL v=$V\n", tmp_path, base=base)
    assert s.config["Labels"] == {"v": "arg"}
    assert s.env()["V"] == "base"


def test_a_bare_arg_keeps_an_earlier_value(tmp_path):
    s = stage("FROM scratch\nARG V=1\nARG V\nRUN true\n", tmp_path)
    assert run_env(s)["V"] == "1"
    assert s.history == ["ARG V=1", "ARG V"]


def test_global_args_are_visible_in_a_stage_only_once_redeclared(tmp_path):
    text = "ARG G=global\nFROM scratch\nRUN echo before\nARG G\nRUN echo after\n"
    s = stage(text, tmp_path)
    before, after = s.run_ops()
    assert "G" not in dict(before.env)
    assert dict(after.env)["G"] == "global"
    overridden = stage(text, tmp_path, build_args={"G": "given"})
    assert dict(overridden.run_ops()[1].env)["G"] == "given"


def test_predefined_platform_args_need_an_arg_line_in_a_stage(tmp_path):
    s = stage("FROM scratch\nRUN echo $TARGETARCH\nARG TARGETARCH\nRUN echo $TARGETARCH\n", tmp_path)
    before, after = s.run_ops()
    assert "TARGETARCH" not in dict(before.env)
    assert dict(after.env)["TARGETARCH"] == "amd64"


def test_proxy_build_args_reach_run_without_an_arg_but_not_its_cache_key_nor_the_config(tmp_path):
    s = stage("FROM scratch\nRUN true\n", tmp_path, build_args={"http_proxy": "http://proxy:3128"})
    op = s.run_ops()[0]
    assert dict(op.proxy_env) == {"HTTP_PROXY": "http://proxy:3128", "http_proxy": "http://proxy:3128"}
    assert run_env(s)["HTTP_PROXY"] == "http://proxy:3128"
    inputs = s.inputs()
    assert inputs is not None and "HTTP_PROXY" not in dict(inputs["env"])
    assert not any("proxy" in item.lower() for item in s.config["Env"])
    assert s.used_args == set()  # consumed by no ARG: the builder leaves proxies out of its warning


def test_env_pairs_expand_with_the_values_before_the_instruction_and_keep_their_place(tmp_path):
    s = stage("FROM scratch\nENV A=1 B=2\nENV A=x B=$A\nENV C=3\n", tmp_path)
    assert s.config["Env"][1:] == ["A=x", "B=1", "C=3"]


def test_blank_env_name_is_an_error(tmp_path):
    with pytest.raises(DockerfileError, match="ENV names can not be blank"):
        stage("FROM scratch\nARG E=\nENV ${E}=1\n", tmp_path)


# --- config instructions -----------------------------------------------------------------------------------
def test_label_expose_volume_user(tmp_path):
    text = ("FROM scratch\nARG P=8080\nLABEL a=1 \"b c\"=$P\nLABEL a=2\nEXPOSE $P 53/udp 7000-7001\n"
            "VOLUME /data $P\nUSER app:$P\n")
    s = stage(text, tmp_path)
    assert s.config["Labels"] == {"a": "2", "b c": "8080"}
    assert list(s.config["ExposedPorts"]) == ["8080/tcp", "53/udp", "7000/tcp", "7001/tcp"]
    assert s.config["Volumes"] == {"/data": {}, "8080": {}}
    assert s.config["User"] == "app:8080"


@pytest.mark.parametrize("text, message", [
    ("EXPOSE 70000", "invalid port '70000' in EXPOSE"),
    ("STOPSIGNAL SIGNOPE", "invalid STOPSIGNAL 'SIGNOPE'"),
    ("HEALTHCHECK --interval=10 CMD true", "invalid --interval=10: expected a duration"),
    ("HEALTHCHECK --timeout=10us CMD true", "--timeout=10us cannot be less than 1ms"),
    ("HEALTHCHECK --retries=x CMD true", "invalid --retries=x: expected a whole number"),
])
def test_invalid_config_values(tmp_path, text, message):
    with pytest.raises(DockerfileError, match=message):
        stage(f"FROM scratch\n{text}\n", tmp_path)


def test_stopsignal_expands_and_accepts_names_numbers_and_realtime(tmp_path):
    assert stage("FROM scratch\nARG S=SIGTERM\nSTOPSIGNAL $S\n", tmp_path).config["StopSignal"] == "SIGTERM"
    assert stage("FROM scratch\nSTOPSIGNAL 9\n", tmp_path).config["StopSignal"] == "9"
    assert stage("FROM scratch\nSTOPSIGNAL SIGRTMIN+3\n", tmp_path).config["StopSignal"] == "SIGRTMIN+3"


def test_relative_workdir_joins_the_previous_one_and_is_made_with_the_next_layer(tmp_path):
    s = stage("FROM scratch\nWORKDIR /app\nUSER 1000\nARG D=src\nWORKDIR $D/..//lib\n", tmp_path)
    assert s.config["WorkingDir"] == "/app/lib"
    assert s.history[-1] == "WORKDIR /app/lib"
    pending = [(w.path, w.user) for w in s.state.pending_workdirs]
    assert pending == [("/app", None), ("/app/lib", "1000")]


def test_shell_changes_the_shell_form_of_later_run_cmd_and_entrypoint(tmp_path):
    s = stage('FROM scratch\nRUN echo a\nSHELL ["/bin/bash", "-eo", "pipefail", "-c"]\nRUN echo b\n'
              'CMD echo c\n', tmp_path)
    first, second = s.run_ops()
    assert first.command.argv == ["/bin/sh", "-c", "echo a"]
    assert second.command.argv == ["/bin/bash", "-eo", "pipefail", "-c", "echo b"]
    assert s.config["Cmd"] == ["/bin/bash", "-eo", "pipefail", "-c", "echo c"]
    assert s.config["Shell"] == ["/bin/bash", "-eo", "pipefail", "-c"]


def test_an_inherited_shell_is_the_stages_shell(tmp_path):
    base = Image(container_config={"Shell": ["/bin/ash", "-c"]})
    assert stage("FROM base\nRUN echo\n", tmp_path, base=base).run_ops()[0].command.argv == ["/bin/ash", "-c", "echo"]


def test_entrypoint_drops_a_cmd_inherited_from_the_base(tmp_path):
    base = Image(container_config={"Cmd": ["base-cmd"], "Entrypoint": ["old"]})
    s = stage('FROM base\nENTRYPOINT ["/app"]\n', tmp_path, base=base)
    assert s.config["Entrypoint"] == ["/app"] and "Cmd" not in s.config


def test_entrypoint_keeps_a_cmd_set_in_the_stage(tmp_path):
    base = Image(container_config={"Cmd": ["base-cmd"]})
    s = stage('FROM base\nCMD ["--help"]\nENTRYPOINT ["/app"]\n', tmp_path, base=base)
    assert s.config["Cmd"] == ["--help"] and s.config["Entrypoint"] == ["/app"]


def test_entrypoint_of_empty_quotes_is_a_shell_command_as_in_buildkit(tmp_path):
    # BuildKit's parser keeps `""` as the shell form's text (handleJSONArgs): not an empty command.
    base = Image(container_config={"Entrypoint": ["old"]})
    config = stage('FROM base\nENTRYPOINT ""\n', tmp_path, base=base).config
    assert config["Entrypoint"] == ["/bin/sh", "-c", '""']


def test_healthcheck_flags_and_none(tmp_path):
    s = stage("FROM scratch\nHEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0s --retries=3 "
              "CMD curl -f http://localhost/\n", tmp_path)
    assert s.config["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://localhost/"],
                                       "Interval": 90_000_000_000, "Timeout": 500_000_000, "Retries": 3}
    assert stage("FROM scratch\nHEALTHCHECK NONE\n", tmp_path).config["Healthcheck"] == {"Test": ["NONE"]}


def test_onbuild_records_the_trigger_unexpanded(tmp_path):
    s = stage("FROM scratch\nARG V=1\nONBUILD RUN echo $V\nONBUILD COPY . /src\n", tmp_path)
    assert s.config["OnBuild"] == ["RUN echo $V", "COPY . /src"]
    assert s.steps == []  # nothing of them runs in this build


def test_maintainer_sets_the_author(tmp_path):
    s = stage("FROM scratch\nMAINTAINER Jane <jane@example.com>\n", tmp_path)
    assert s.state.image.meta["author"] == "Jane <jane@example.com>"


# --- RUN and COPY cache inputs, from the same resolution as the step ---------------------------------------
def test_run_cache_inputs_hold_the_expanded_command_and_its_environment(tmp_path):
    s = stage("FROM scratch\nARG V=1\nWORKDIR /w\nUSER 7\nRUN --network=none echo $V\n", tmp_path)
    op = s.run_ops()[0]
    inputs = s.inputs()
    assert inputs is not None
    assert inputs["argv"] == op.command.argv == ["/bin/sh", "-c", "echo $V"]  # the shell expands $V
    assert ["V", "1"] in [list(item) for item in inputs["env"]]
    assert (inputs["user"], inputs["workdir"], inputs["network"]) == ("7", "/w", "none")
    assert inputs["flags"] == [["network", "none"]]


def test_a_used_arg_changes_the_run_cache_inputs_and_an_undeclared_one_does_not(tmp_path):
    text = "ARG UNUSED=x\nFROM scratch\nARG USED=1\nRUN echo hi\n"
    base = stage(text, tmp_path).inputs()
    assert stage(text, tmp_path, build_args={"USED": "2"}).inputs() != base
    assert stage(text, tmp_path, build_args={"UNUSED": "y"}).inputs() == base
    assert stage(text, tmp_path, build_args={"NEVER": "z"}).inputs() == base


def test_run_mount_values_are_expanded_once_into_its_cache_inputs(tmp_path):
    s = stage("FROM scratch\nARG ID=deps\nRUN --mount=type=cache,id=$ID,target=cache true\n", tmp_path)
    op = s.run_ops()[0]
    assert [(m.type, m.id, m.target) for m in op.mounts] == [("cache", "deps", "/cache")]
    inputs = s.inputs()
    assert inputs is not None and inputs["mounts"][0]["id"] == "deps"


def test_copy_cache_inputs_hold_expanded_operands_and_source_content(tmp_path):
    text = "FROM scratch\nARG SRC=a.txt\nWORKDIR /app\nCOPY --chmod=644 $SRC ./\n"
    first = RecordingStage(text, tmp_path)
    (first.context_dir / "a.txt").write_text("one")
    inputs = first.run().inputs()
    assert inputs is not None
    assert (inputs["sources"], inputs["dest"], inputs["workdir"]) == (["a.txt"], "./", "/app")
    assert inputs["flags"] == [["chmod", "644"]]
    assert [c["source"] for c in inputs["contents"]] == ["a.txt"]
    (first.context_dir / "a.txt").write_text("two")
    changed = RecordingStage(text, tmp_path).run().inputs()
    assert changed is not None and changed["contents"] != inputs["contents"]


def test_add_of_a_url_without_checksum_has_no_cache_inputs(tmp_path):
    s = stage("FROM scratch\nADD http://127.0.0.1:1/file /f\n", tmp_path)
    assert s.inputs() is None


def test_copy_heredoc_is_expanded_once_with_the_stage_values(tmp_path):
    s = stage("FROM scratch\nARG NAME=world\nCOPY <<EOF /greeting\nhello $NAME\nEOF\n", tmp_path)
    inputs = s.inputs()
    assert inputs is not None and inputs["heredocs"] == [["EOF", "hello world\n"]]
