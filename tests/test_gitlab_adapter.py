"""The GitLab component's adapter (integrations/gitlab) without a pipeline: tag defaults, input mapping, the
`dockyard build` arguments, registry login, the dotenv report's rules, section markers, and the template's
inputs. The whole component under a real pipeline (gitlab-ci-local) is tests/e2e/test_gitlab_component.py."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dockyard.errors import OutputError, UsageError
from dockyard.events import (BuildFinished, StageStarted, StepFinished, StepStarted, TransferFinished,
                             TransferStarted)
from dockyard_integrations.gitlab import job, merge, reports
from dockyard_integrations.gitlab.inputs import ComponentInputs
from dockyard_integrations.gitlab.login import registry_login
from dockyard_integrations.gitlab.sections import SectionedLog, section_end, section_start
from dockyard_integrations.gitlab.tags import Pipeline, default_tag_names, image_references, standard_labels

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "templates" / "build.yml"
MERGE_TEMPLATE = REPO / "templates" / "merge.yml"


# --- tags -----------------------------------------------------------------------------------------------------

def test_a_branch_gets_its_slug_and_the_short_sha():
    pipeline = Pipeline(ref_slug="feature-x", short_sha="0a1b2c3d", branch="feature/X", default_branch="main")
    assert default_tag_names(pipeline) == ["feature-x", "0a1b2c3d"]


def test_the_default_branch_also_gets_latest():
    pipeline = Pipeline(ref_slug="main", short_sha="0a1b2c3d", branch="main", default_branch="main")
    assert default_tag_names(pipeline) == ["main", "0a1b2c3d", "latest"]


def test_a_semver_tag_gets_version_minor_and_major_but_not_latest():
    pipeline = Pipeline(ref_slug="v1-2-3", short_sha="0a1b2c3d", tag="v1.2.3", default_branch="main")
    assert default_tag_names(pipeline) == ["1.2.3", "1.2", "1", "0a1b2c3d"]


def test_a_pre_release_gets_only_its_full_version_and_other_tags_their_slug():
    assert default_tag_names(Pipeline(ref_slug="v2-0-0-rc-1", short_sha="abc", tag="v2.0.0-rc.1")) == [
        "2.0.0-rc.1", "abc"]
    assert default_tag_names(Pipeline(ref_slug="release-2024", short_sha="abc", tag="release/2024")) == [
        "release-2024", "abc"]


def test_given_tags_are_names_for_the_image_or_whole_references():
    pipeline = Pipeline(ref_slug="main", short_sha="abc")
    assert image_references("reg:5000/g/app", ("v1", "other.io/x/y:z"), pipeline) == [
        "reg:5000/g/app:v1", "other.io/x/y:z"]
    assert image_references("reg:5000/g/app", (), pipeline) == ["reg:5000/g/app:main", "reg:5000/g/app:abc"]
    with pytest.raises(UsageError, match="not a valid tag") as info:
        image_references("reg/g/app", ("has space",), pipeline)
    assert info.value.subject == "input tags"
    with pytest.raises(UsageError, match="CI_COMMIT_REF_SLUG"):
        image_references("reg/g/app", (), Pipeline())


def test_oci_labels_come_from_the_project_the_commit_and_the_pipeline_time():
    pipeline = Pipeline(sha="f" * 40, project_url="https://gl.example/g/app", project_name="app",
                        created_at="2026-01-02T03:04:05Z", tag="v1.0.0")
    labels = dict(item.split("=", 1) for item in standard_labels(pipeline, {}))
    assert labels == {"org.opencontainers.image.source": "https://gl.example/g/app",
                      "org.opencontainers.image.url": "https://gl.example/g/app",
                      "org.opencontainers.image.revision": "f" * 40,
                      "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
                      "org.opencontainers.image.title": "app", "org.opencontainers.image.version": "v1.0.0"}
    # A reproducible build keeps its epoch as the creation time.
    labels = dict(item.split("=", 1) for item in standard_labels(pipeline, {"SOURCE_DATE_EPOCH": "0"}))
    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"


# --- inputs and arguments ---------------------------------------------------------------------------------------

def typed(**values) -> str:
    return json.dumps(values)


def test_inputs_are_read_from_the_job_variables_the_template_sets():
    inputs = ComponentInputs.from_environment({
        "DOCKYARD_INPUT_IMAGE": "reg/g/app", "DOCKYARD_INPUT_CONTEXT": "app", "DOCKYARD_INPUT_DOCKERFILE": "",
        "DOCKYARD_INPUT_TARGET": "runtime", "DOCKYARD_INPUT_LINT": "Warning",
        "DOCKYARD_INPUT_EXTRA_ARGS": "--platform linux/amd64 --label 'a=b c'",
        # what the template's DOCKYARD_INPUT_TYPED becomes once GitLab has interpolated the inputs
        "DOCKYARD_INPUT_TYPED": '{"push": false, "cache": true, "tags": ["v1"],\n"build-args": ["A=1", "B=two words"], '
                                '"build-contexts": ["base=docker-image://alpine:3.20", "lib=libs/common"],\n'
                                '"platforms": ["linux/amd64", "linux/arm64"], "push-by-digest": false}',
    })
    assert inputs == ComponentInputs(image="reg/g/app", context="app", tags=("v1",), build_args=("A=1", "B=two words"),
                                     build_contexts=("base=docker-image://alpine:3.20", "lib=libs/common"),
                                     push=False, target="runtime", cache=True, lint="warning",
                                     extra_args=("--platform", "linux/amd64", "--label", "a=b c"),
                                     platforms=("linux/amd64", "linux/arm64"))


@pytest.mark.parametrize("environ, subject", [
    ({"DOCKYARD_INPUT_IMAGE": ""}, "input image"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_LINT": "fatal"}, "input lint"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_EXTRA_ARGS": "'unclosed"}, "input extra-args"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_TYPED": "{push: true"}, "component inputs"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_TYPED": typed(push="yes")}, "input push"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_TYPED": typed(tags="v1")}, "input tags"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_TYPED": typed(**{"build-contexts": "a=b"})},
     "input build-contexts"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_TYPED": typed(platforms="linux/amd64")}, "input platforms"),
    ({"DOCKYARD_INPUT_IMAGE": "r/a", "DOCKYARD_INPUT_TYPED": typed(**{"push-by-digest": 1})}, "input push-by-digest"),
])
def test_bad_inputs_are_usage_errors_naming_the_input(environ, subject):
    with pytest.raises(UsageError) as info:
        ComponentInputs.from_environment(environ)
    assert info.value.subject == subject


def test_build_arguments_map_every_input(tmp_path):
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    inputs = ComponentInputs(image="reg/g/app", context="app", dockerfile="app/Dockerfile.prod",
                             build_args=("A=1",), build_contexts=("base=docker-image://alpine:3.20", "lib=libs"),
                             target="runtime", lint="warning", extra_args=("--no-cache",))
    args = job.build_arguments(inputs, references=["reg/g/app:main"], labels=["k=v"], files=files)
    assert args == ["--progress", "json", "--metadata-file", str(files.metadata),
                    "--check", "--fail-on", "warning", "--report", f"gitlab={files.code_quality}",
                    "--file", "app/Dockerfile.prod", "--tag", "reg/g/app:main", "--label", "k=v",
                    "--build-arg", "A=1", "--build-context", "base=docker-image://alpine:3.20",
                    "--build-context", "lib=libs", "--target", "runtime",
                    "--cache-from", "type=registry,ref=reg/g/app:buildcache",
                    "--cache-to", "type=registry,ref=reg/g/app:buildcache,mode=max",
                    "--push", "--no-cache", "app"]


def test_without_push_nothing_is_written_to_the_registry_and_without_cache_nothing_is_read(tmp_path):
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    args = job.build_arguments(ComponentInputs(image="reg/g/app", push=False), references=["reg/g/app:x"],
                               labels=[], files=files)
    assert "--cache-from" in args and "--cache-to" not in args and "--push" not in args
    args = job.build_arguments(ComponentInputs(image="reg/g/app", cache=False), references=["reg/g/app:x"],
                               labels=[], files=files)
    assert "--cache-from" not in args and "--cache-to" not in args and "--push" in args


def test_platforms_make_one_platform_list(tmp_path):
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    inputs = ComponentInputs(image="reg/g/app", platforms=("linux/amd64", "linux/arm64,linux/arm/v7"))
    args = job.build_arguments(inputs, references=["reg/g/app:x"], labels=[], files=files)
    assert args[args.index("--platform") + 1] == "linux/amd64,linux/arm64,linux/arm/v7"
    with pytest.raises(UsageError) as info:
        job.build_arguments(ComponentInputs(image="reg/g/app", platforms=("linux/arm65",)), references=["r/a:x"],
                            labels=[], files=files)
    assert info.value.subject == "input platforms" and "unknown architecture 'arm65'" in info.value.message


def test_a_matrix_job_pushes_by_digest_untagged_with_a_cache_of_its_own(tmp_path):
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    inputs = ComponentInputs(image="reg/g/app", platforms=("linux/arm64",), push_by_digest=True)
    args = job.build_arguments(inputs, references=[], labels=[], files=files)
    for pair in (["--output", "type=image,name=reg/g/app,push-by-digest=true,push=true"],
                 ["--platform", "linux/arm64"], ["--cache-from", "type=registry,ref=reg/g/app:buildcache-linux-arm64"],
                 ["--cache-to", "type=registry,ref=reg/g/app:buildcache-linux-arm64,mode=max"]):
        assert any(args[i:i + 2] == pair for i in range(len(args))), pair
    assert "--push" not in args and "--tag" not in args
    for bad, subject in (({"push": False}, "input push-by-digest"), ({"tags": ("v1",)}, "input tags")):
        with pytest.raises(UsageError) as info:
            job.build_arguments(ComponentInputs(image="reg/g/app", push_by_digest=True, **bad), references=[],
                                labels=[], files=files)
        assert info.value.subject == subject


def test_a_matrix_job_leaves_its_digest_for_the_merge(tmp_path):
    files = job.WorkFiles(metadata=tmp_path / "m.json", code_quality=tmp_path / "cq.json")
    files.metadata.write_text(json.dumps({"digest": "sha256:" + "a" * 64}))
    inputs = ComponentInputs(image="reg/g/app", platforms=("linux/arm64",), push_by_digest=True)
    job.publish(tmp_path / ".dockyard", files, inputs, [], {})
    assert [p.name for p in (tmp_path / ".dockyard" / "digests").iterdir()] == ["a" * 64]
    dotenv = (tmp_path / ".dockyard" / job.DOTENV).read_text()
    assert f"DOCKYARD_IMAGE_REF=reg/g/app@sha256:{'a' * 64}" in dotenv


# --- the merge component ------------------------------------------------------------------------------------------

DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_the_merge_assembles_the_matrix_digests_under_the_tags(tmp_path):
    inputs = merge.MergeInputs.from_environment({
        "DOCKYARD_INPUT_IMAGE": "reg/g/app",
        "DOCKYARD_INPUT_TYPED": typed(tags=["v1"], sources=["other/img@" + DIGEST_A], annotations=["index:k=v"],
                                      append=True, push=True)})
    assert inputs == merge.MergeInputs(image="reg/g/app", tags=("v1",), sources=("other/img@" + DIGEST_A,),
                                       annotations=("index:k=v",), append=True, push=True)
    digests = tmp_path / "digests"
    digests.mkdir()
    (digests / ("b" * 64)).touch()
    (digests / ("a" * 64)).touch()
    request = merge.manifest_request(inputs, references=["reg/g/app:v1"], digests_dir=digests,
                                     digest_file=tmp_path / "d")
    assert request.sources == ("other/img@" + DIGEST_A, "reg/g/app@" + DIGEST_A, "reg/g/app@" + DIGEST_B)
    assert request.append and not request.dry_run and request.annotations == ("index:k=v",)
    # sources alone need no digests; neither is an error naming the artifact directory
    assert merge.merge_sources(merge.MergeInputs(image="r/a", sources=("r/a:x",)), tmp_path / "none") == ["r/a:x"]
    with pytest.raises(UsageError) as info:
        merge.merge_sources(merge.MergeInputs(image="r/a"), tmp_path / "none")
    assert info.value.subject == ".dockyard/digests"


def test_a_failed_merge_hands_no_index_on(tmp_path):
    """`python -m dockyard_integrations.gitlab merge` for real, up to dockyard: no registry answers on the port, so
    manifest create fails, and the job with it, without a dotenv report passing for the index."""
    (tmp_path / ".dockyard" / "digests").mkdir(parents=True)
    (tmp_path / ".dockyard" / "digests" / ("a" * 64)).touch()
    env = {**os.environ, "DOCKYARD_INPUT_IMAGE": "127.0.0.1:9/g/app",
           "DOCKYARD_INPUT_TYPED": typed(tags=["v1"], push=True)}
    result = subprocess.run([sys.executable, "-m", "dockyard_integrations.gitlab", "merge"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"sources: 127.0.0.1:9/g/app@{DIGEST_A}" in result.stdout
    assert not (tmp_path / ".dockyard" / job.DOTENV).exists()


# --- registry login ---------------------------------------------------------------------------------------------

CI = {"CI_REGISTRY": "gl.example:5050", "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "pw-123"}


def test_login_writes_a_private_docker_config_keeping_the_users_own(tmp_path):
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(json.dumps(
        {"auths": {"other.example": {"auth": base64.b64encode(b"u:p").decode()}}, "credHelpers": {"x.io": "h"}}))
    changes, note = registry_login({**CI, "HOME": str(home)}, tmp_path / "private")
    config_dir = Path(changes["DOCKER_CONFIG"])
    config = json.loads((config_dir / "config.json").read_text())
    assert base64.b64decode(config["auths"]["gl.example:5050"]["auth"]) == b"gitlab-ci-token:pw-123"
    assert "other.example" in config["auths"] and config["credHelpers"] == {"x.io": "h"}
    assert stat.S_IMODE((config_dir / "config.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert "pw-123" not in note and "gitlab-ci-token" in note


def test_credentials_the_user_configured_win_over_the_job_token(tmp_path):
    auth_config = json.dumps({"auths": {"gl.example:5050": {"auth": base64.b64encode(b"deploy:tok").decode()}}})
    changes, note = registry_login({**CI, "HOME": str(tmp_path), "DOCKER_AUTH_CONFIG": auth_config},
                                   tmp_path / "private")
    assert changes == {} and "DOCKER_AUTH_CONFIG" in note
    assert not (tmp_path / "private").exists()


def test_no_login_without_the_registry_variables(tmp_path):
    assert registry_login({"HOME": str(tmp_path)}, tmp_path / "p")[0] == {}


# --- results ----------------------------------------------------------------------------------------------------

def test_dotenv_is_key_value_lines_without_whitespace():
    assert reports.dotenv_text({"DOCKYARD_DIGEST": "sha256:ab", "DOCKYARD_IMAGE": "r/a"}) == (
        "DOCKYARD_DIGEST=sha256:ab\nDOCKYARD_IMAGE=r/a\n")
    with pytest.raises(OutputError):
        reports.dotenv_text({"DOCKYARD_TAGS": "a b"})
    with pytest.raises(OutputError):
        reports.dotenv_text({"BAD-KEY": "x"})


def test_dotenv_stays_within_gitlabs_5_kb():
    required = {"DOCKYARD_DIGEST": "sha256:" + "a" * 64}
    many_tags = ",".join(f"registry.example.com/group/app:tag-{n:04d}" for n in range(200))
    text = reports.dotenv_text(required, {"DOCKYARD_TAGS": many_tags})
    assert text == f"DOCKYARD_DIGEST=sha256:{'a' * 64}\n"  # the optional entry is left out, not cut
    assert len(reports.dotenv_text(required, {"DOCKYARD_TAGS": "r/a:1"}).encode()) <= reports.DOTENV_LIMIT
    with pytest.raises(OutputError, match="5120"):
        reports.dotenv_text({"DOCKYARD_TAGS": many_tags})


def test_the_annotation_links_to_the_projects_registry_page_or_the_manifest():
    assert reports.image_link("gl.example:5050/g/app", "sha256:ab", registry_image="gl.example:5050/g/app",
                              project_url="https://gl.example/g/app") == "https://gl.example/g/app/container_registry"
    assert reports.image_link("127.0.0.1:5000/g/app", "sha256:ab", registry_image="gl.example:5050/g/app",
                              project_url="https://gl.example/g/app") == (
        "http://127.0.0.1:5000/v2/g/app/manifests/sha256:ab")
    report = json.loads(reports.annotations_report("r/a", "sha256:ab", ["r/a:1"], link="https://x"))
    assert report["dockyard"][0]["external_link"] == {"label": "image r/a@sha256:ab", "url": "https://x"}


def test_code_quality_paths_are_relative_to_the_project(tmp_path):
    """The adapter for real up to its checks: `--fail-on warning` stops the job before anything is pulled, and the
    report (published from .dockyard/) names the Dockerfile as the repository does, at the finding's line."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM 127.0.0.1:9/none:1\nENV legacy form\n")
    env = {**os.environ, "DOCKYARD_INPUT_IMAGE": "127.0.0.1:9/g/app", "DOCKYARD_INPUT_CONTEXT": "app",
           "DOCKYARD_INPUT_LINT": "warning", "DOCKYARD_INPUT_TYPED": typed(push=False, cache=False, tags=["t"]),
           "CI_COMMIT_SHA": "f" * 40}
    result = subprocess.run([sys.executable, "-m", "dockyard_integrations.gitlab"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 10, result.stdout + result.stderr
    findings = json.loads((tmp_path / ".dockyard" / job.CODE_QUALITY).read_text())
    legacy = [f for f in findings if f["check_name"] == "LegacyKeyValueFormat"]
    assert legacy and legacy[0]["location"] == {"path": "app/Dockerfile", "lines": {"begin": 2, "end": 2}}
    assert not (tmp_path / ".dockyard" / job.DOTENV).exists()


# --- the log ----------------------------------------------------------------------------------------------------

def test_section_markers_are_gitlabs():
    assert section_start("dockyard_push", "push", when=1700000000) == (
        "\x1b[0Ksection_start:1700000000:dockyard_push[collapsed=true]\r\x1b[0Kpush\n")
    assert section_end("dockyard_push", when=1700000001) == "\x1b[0Ksection_end:1700000001:dockyard_push\r\x1b[0K\n"


def test_each_stage_and_the_push_get_a_section_and_the_error_none():
    out = io.StringIO()
    log = SectionedLog(out)
    events = [StageStarted(stage="build", base="r/base:1", time=100.0),
              TransferFinished(digest="sha256:base", skipped="exists", time=100.1),  # a base layer already here
              StepStarted(step=1, total=2, stage="build", text="RUN make", file="Dockerfile", line=2, time=100.2),
              StepFinished(step=1, duration=1.0, time=101.0),
              # A layer uploaded while the build goes on belongs to its stage, not to the push's section.
              TransferStarted(direction="push", image="r/app", digest="sha256:early", total=5, time=101.05),
              StageStarted(stage="stage-1", base="build", time=101.1),
              StepStarted(step=2, total=2, stage="stage-1", text="COPY a b", file="Dockerfile", line=4, time=101.2),
              StepFinished(step=2, duration=0.1, time=101.3),
              TransferFinished(digest="sha256:layer", skipped="mounted", time=101.4),
              TransferStarted(direction="push", image="r/app", digest="sha256:cfg", total=10, time=101.5),
              BuildFinished(digest="sha256:img", duration=2.0, time=102.0)]
    log.feed(json.dumps(e.to_json()) + "\n" for e in events)
    log.line("error: something after the build")
    text = out.getvalue()
    markers = re.findall(r"section_(start|end):(\d+):(\w+)", text)
    assert markers == [("start", "100", "dockyard_stage_1"), ("end", "101", "dockyard_stage_1"),
                       ("start", "101", "dockyard_stage_2"), ("end", "101", "dockyard_stage_2"),
                       ("start", "101", "dockyard_push"), ("end", "102", "dockyard_push")]
    assert "\r\x1b[0Kstage build (FROM r/base:1)\n" in text
    assert "#1 DONE" in text.split("section_end:101:dockyard_stage_1")[0]
    assert text.rstrip().endswith("error: something after the build")
    assert log.outcome is not None and log.other_lines == ["error: something after the build"]


# --- the template -----------------------------------------------------------------------------------------------

def test_the_template_declares_every_input_it_uses_with_a_description():
    header, _, body = TEMPLATE.read_text().partition("\n---\n")
    declared = re.findall(r"^    ([a-z-]+):\n      description: \S", header, re.M)
    used = set(re.findall(r"\$\[\[ inputs\.([a-z-]+) \]\]", body))
    assert used == set(declared) and len(declared) == len(re.findall(r"^    [a-z-]+:$", header, re.M))
    # No global keywords: the only top-level key is the job.
    assert re.findall(r"^(\S[^:]*):", body, re.M) == ['"$[[ inputs.job-name ]]"']
    # Every variable the job gets is one the adapter reads.
    source = (REPO / "integrations" / "gitlab" / "inputs.py").read_text()
    for name in re.findall(r"DOCKYARD_INPUT_([A-Z_]+):", body):
        assert f'"{name}"' in source or f"$DOCKYARD_INPUT_{name}" in body  # PYTHON: read by the script


def test_the_merge_template_declares_every_input_it_uses_and_the_adapter_reads_them():
    header, _, body = MERGE_TEMPLATE.read_text().partition("\n---\n")
    declared = re.findall(r"^    ([a-z-]+):\n      description: \S", header, re.M)
    used = set(re.findall(r"\$\[\[ inputs\.([a-z-]+) \]\]", body))
    assert used == set(declared) and len(declared) == len(re.findall(r"^    [a-z-]+:$", header, re.M))
    assert re.findall(r"^(\S[^:]*):", body, re.M) == ['"$[[ inputs.job-name ]]"']
    source = (REPO / "integrations" / "gitlab" / "merge.py").read_text()
    typed_names = re.findall(r'"([a-z-]+)": \$\[\[ inputs', body)
    assert typed_names and all(f'"{name}"' in source for name in typed_names)


def test_the_builder_image_is_pinned_to_this_version():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    image, version = pyproject["tool"]["dockyard"]["release"]["builder-image"], pyproject["project"]["version"]
    for template in (TEMPLATE, MERGE_TEMPLATE):
        default = re.search(r"builder-image:\n.*\n      default: (\S+)", template.read_text()).group(1)
        assert default == f"{image}:{version}"  # what the release publishes (docs/releasing.md)
