"""A copy of this checkout as a fresh git repository, for the tests that run dockyard's own pipelines (the
release workflow under act, .gitlab-ci.yml under gitlab-ci-local): the tracked and untracked files git does not
ignore, in one commit, optionally tagged, with an origin remote (act takes GITHUB_REPOSITORY from it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def copy_repository(target: Path, *, tag: str | None = None,
                    origin: str = "https://github.com/dockyard-build/dockyard.git") -> Path:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-C", str(target), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True, timeout=60)
    subprocess.run([*git, "remote", "add", "origin", origin], check=True, timeout=60)
    subprocess.run([*git, "add", "-A"], check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "-m", "release"], check=True, timeout=60)
    if tag is not None:
        subprocess.run([*git, "tag", tag], check=True, timeout=60)
    return target
