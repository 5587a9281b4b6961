#!/usr/bin/env python3
"""dockyard's version, kept in one place (pyproject.toml), and what a release derives from it.

Everything else that names a version names pyproject.toml's: this script is how it gets there and how that is
checked (tests/test_release_versions.py runs `check`; the release workflow runs it against the tag).

  release.py check [--tag vX.Y.Z]    every place names pyproject.toml's version (and the tag, when given)
  release.py set X.Y.Z               writes X.Y.Z into pyproject.toml and every place below
  release.py notes X.Y.Z             the CHANGELOG.md section of X.Y.Z (the GitHub release's notes)
  release.py publish-release X.Y.Z --api-url URL --repository OWNER/REPO --tag vX.Y.Z --image IMAGE
             --executor DIGEST --tags REFS --debug DIGEST --debug-tags REFS [--prerelease true|false]
                                     creates the GitHub release (GITHUB_TOKEN): the changelog section, the
                                     images' digests and tags, the PyPI package
  release.py image-tags X.Y.Z [--existing-tags TAGS]
                                     the builder image's tags: X.Y.Z, X.Y, X, and `latest` when X.Y.Z is a
                                     stable release at least as new as every stable one in TAGS (git tags)

Standard library only: the release workflow runs it before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.error
import urllib.request
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION_PATTERN = r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?"


@dataclass(frozen=True)
class Place:
    """A file that names the version: every match of `pattern` (its one group is the version) must name it,
    and there must be at least one."""

    path: str
    pattern: str
    what: str


def builder_image() -> str:
    """The builder image's repository, as the release publishes it (pyproject.toml's [tool.dockyard.release])."""
    return release_settings()["builder-image"]


def release_settings() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dockyard"]["release"]


def places() -> tuple[Place, ...]:
    image = re.escape(builder_image())
    # `IMAGE:VERSION` or `IMAGE:VERSION-debug`: the group stops before the variant's suffix.
    image_ref = rf"{image}:({VERSION_PATTERN})(?:-debug)?\b"
    component_ref = rf"/dockyard/(?:build|merge)@({VERSION_PATTERN})\b"
    return (
        Place("core/version.py", rf'^__version__ = "({VERSION_PATTERN})"$', "`dockyard --version`"),
        Place("templates/build.yml", image_ref, "the GitLab component's default builder-image"),
        Place("templates/build.yml", component_ref, "the component's include example"),
        Place("templates/merge.yml", image_ref, "the GitLab merge component's default builder-image"),
        Place("examples/tekton/task/dockyard/0.1/dockyard.yaml", image_ref, "the Tekton Task's BUILDER_IMAGE"),
        Place("examples/tekton/task/dockyard/0.1/README.md", image_ref, "the Tekton Task's documented default"),
        Place("examples/kubernetes/dockyard-job.yaml", image_ref, "the Kubernetes Job example's image"),
        Place("examples/kubernetes/README.md", image_ref, "the Kubernetes example's documented image"),
        Place("docs/jenkins.md", rf"(?:{image_ref}|dockyard@v({VERSION_PATTERN})')",
              "the Jenkins docs' library version (@Library) and builder image"),
        Place("docs/gitlab.md", rf"(?:{image_ref}|{component_ref}|ref: ({VERSION_PATTERN})$)",
              "the GitLab docs' component version and builder image"),
        Place("templates/merge.yml", component_ref, "the merge component's include example"),
        Place("docs/migrating-from-kaniko.md", rf"(?:{image_ref}|/dockyard@v({VERSION_PATTERN})\b)",
              "the migration guide's images and action version"),
        Place("docs/github-action.md", rf"/dockyard@v({VERSION_PATTERN})\b", "the action's documented version"),
        Place("examples/github-actions/multi-platform-runners.yml", rf"/dockyard@v({VERSION_PATTERN})\b",
              "the example workflow's action version"),
        Place("README.md", rf"(?:{image_ref}|/dockyard@v({VERSION_PATTERN})\b)",
              "the README's action and image versions"),
        Place("docs/releasing.md", image_ref, "the release docs' image"),
    )


def project_version(root: Path = ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def disagreements(root: Path = ROOT) -> list[str]:
    """One line per place that does not name pyproject.toml's version (or names none)."""
    version = project_version(root)
    problems = []
    for place in places():
        text = (root / place.path).read_text()
        found = [next(group for group in match.groups() if group)
                 for match in re.finditer(place.pattern, text, re.M)]
        if not found:
            problems.append(f"{place.path}: names no version ({place.what}); expected {version}")
        for other in sorted(set(found) - {version}):
            problems.append(f"{place.path}: {place.what} names {other}, pyproject.toml {version}")
    return problems


def set_version(new: str, root: Path = ROOT) -> None:
    if not re.fullmatch(VERSION_PATTERN, new):
        raise SystemExit(f"release.py: {new!r} is not a version (X.Y.Z, optionally aN, bN or rcN)")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(re.sub(rf'^version = "{VERSION_PATTERN}"$', f'version = "{new}"', pyproject.read_text(),
                                count=1, flags=re.M))
    for place in places():
        path = root / place.path

        def replace(match: re.Match[str]) -> str:
            text, start = match.group(0), match.start(0)
            for index, group in enumerate(match.groups(), 1):
                if group:
                    begin, end = match.start(index) - start, match.end(index) - start
                    return text[:begin] + new + text[end:]
            return text

        path.write_text(re.sub(place.pattern, replace, path.read_text(), flags=re.M))


def changelog_section(version: str, root: Path = ROOT) -> str:
    """The body of `## [VERSION] - DATE` in CHANGELOG.md, up to the next `## ` heading."""
    text = (root / "CHANGELOG.md").read_text()
    match = re.search(rf"^## \[{re.escape(version)}\][^\n]*\n(.*?)(?=^## |^\[[^\]]+\]: |\Z)", text, re.M | re.S)
    if match is None or not match.group(1).strip():
        raise SystemExit(f"release.py: CHANGELOG.md has no section `## [{version}] - YYYY-MM-DD` with notes in it; "
                         "move the Unreleased entries under one before tagging")
    return match.group(1).strip() + "\n"


def _key(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def image_tags(version: str, existing: list[str]) -> list[str]:
    """Docker's semver tag scheme (docker/metadata-action's type=semver): a pre-release gets its own tag only;
    a stable release also X.Y and X, and `latest` unless a newer stable release is already tagged."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        return [version]
    major, minor, _ = version.split(".")
    stable = [tag.removeprefix("v") for tag in existing if re.fullmatch(r"v?\d+\.\d+\.\d+", tag)]
    tags = [version, f"{major}.{minor}", major]
    if all(_key(other) <= _key(version) for other in stable):
        tags.append("latest")
    return tags


def release_notes(version: str, image: str, images: list[tuple[str, str, str]], root: Path = ROOT) -> str:
    """The release's body: the changelog section, then each image variant's digest and tags, then the package.
    `images`: (what, digest, comma-separated references)."""
    lines = [changelog_section(version, root), "## Images", ""]
    for what, digest, refs in images:
        lines.append(f"{what}: `{image}@{digest}`, tagged {', '.join(f'`{ref}`' for ref in refs.split(','))}")
        lines.append("")
    lines += [f"Verify a signature: `cosign verify {image}@{images[0][1]} --certificate-identity-regexp "
              f"'/.github/workflows/release.yml@refs/tags/v{version}$' "
              "--certificate-oidc-issuer https://token.actions.githubusercontent.com`", "",
              "## Python package", "", f"`pip install dockyard=={version}`", ""]
    return "\n".join(lines)


def publish_release(api_url: str, repository: str, payload: dict) -> dict:
    """POST /repos/OWNER/REPO/releases with the job's token; the error says what GitHub answered."""
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/repos/{repository}/releases", data=json.dumps(payload).encode(), method="POST",
        headers={"Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}", "Accept": "application/vnd.github+json",
                 "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise SystemExit(f"release.py: creating the release {payload['tag_name']} failed: HTTP {error.code} "
                         f"{error.read().decode(errors='replace')[:500]}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check")
    check.add_argument("--tag", help="the git tag being released (vX.Y.Z)")
    commands.add_parser("set").add_argument("version")
    commands.add_parser("notes").add_argument("version")
    publish = commands.add_parser("publish-release")
    publish.add_argument("version")
    for name in ("--api-url", "--repository", "--tag", "--image", "--executor", "--tags", "--debug",
                 "--debug-tags"):
        publish.add_argument(name, required=True)
    publish.add_argument("--prerelease", default="false")
    tags = commands.add_parser("image-tags")
    tags.add_argument("version")
    tags.add_argument("--existing-tags", default="", help="the repository's git tags, whitespace-separated")
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = disagreements()
        version = project_version()
        if args.tag is not None and args.tag != f"v{version}":
            problems.append(f"the tag {args.tag} is not pyproject.toml's version v{version}: run "
                            f"`python3 scripts/release.py set {args.tag.removeprefix('v')}` and tag that commit")
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("release.py: versions disagree; `python3 scripts/release.py set X.Y.Z` writes one everywhere",
                  file=sys.stderr)
            return 1
        print(version)
    elif args.command == "set":
        set_version(args.version)
    elif args.command == "notes":
        sys.stdout.write(changelog_section(args.version))
    elif args.command == "publish-release":
        body = release_notes(args.version, args.image, [("Builder image", args.executor, args.tags),
                                                        ("Debug variant", args.debug, args.debug_tags)])
        prerelease = args.prerelease == "true"
        created = publish_release(args.api_url, args.repository, {
            "tag_name": args.tag, "name": f"dockyard {args.version}", "body": body, "draft": False,
            "prerelease": prerelease, "make_latest": "false" if prerelease else "legacy"})
        print(f"release {args.tag} created: {created.get('html_url', '')}")
    else:
        print("\n".join(image_tags(args.version, args.existing_tags.split())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
