"""dockyard installed as users get it, for the benchmarks to run.

The development virtualenv (.venv) has dockyard installed editable: every start-up then goes through
setuptools' editable finder (about 10 ms of imports on this machine), and nothing compiled its modules unless
scripts/install.sh did. The GitHub Action and the builder image install it with a plain `pip install`, which
copies the package into site-packages and byte-compiles it. `install()` does the same from this checkout into
a scratch virtualenv, offline: the wheel is built with .venv's setuptools (no build isolation), and the
dependencies are not installed again but taken from .venv's site-packages (a path line in a .pth file, which
adds that directory without running the .pth files in it, so the editable finder is not loaded).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def install(target: Path, source: Path = REPO_ROOT) -> Path:
    """A virtualenv at `target` with this checkout (or the dockyard sources at `source`) installed the regular
    way; returns its `dockyard` script."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    (_site_packages(python) / "dockyard-benchmark-dependencies.pth").write_text(
        f"{_site_packages(DEVELOPMENT_PYTHON)}\n")
    subprocess.run([str(DEVELOPMENT_PYTHON), "-m", "pip", "--python", str(python), "install", "-q",
                    "--disable-pip-version-check", "--no-deps", "--no-build-isolation", "--no-index",
                    str(source)], check=True)
    script = target / "bin" / "dockyard"
    check = subprocess.run([str(python), "-c", "import dockyard, sys; print(dockyard.__file__)"],
                           check=True, capture_output=True, text=True).stdout.strip()
    if not check.startswith(str(target)):  # the benchmark would measure the editable copy instead
        raise RuntimeError(f"dockyard in {target} is imported from {check}, not from its own site-packages")
    return script


if __name__ == "__main__":  # `python benchmarks/installed.py DIR`: for measuring by hand
    print(install(Path(sys.argv[1])))
