#!/usr/bin/env bash
# Installs everything dockyard, its demo and its tests need on a fresh Debian machine (run as root):
# Debian packages (registry, peers and tools the tests use) and a virtualenv in .venv with dockyard in it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  docker-registry      # the registry the demo and the tests push to (on loopback)
  busybox-static       # the static busybox the example and test base images are made of
  buildah skopeo umoci # the compatibility oracle, and tools that read back what we push
  libcap2-bin util-linux
  git                  # ADD of a git URL clones with the git CLI
  openssh-client       # ssh-agent, for the RUN --mount=type=ssh tests
  proot                # RUN without mount/unshare privileges (isolation/proot.py)
  uidmap               # newuidmap/newgidmap: a non-root user's build in a user namespace (isolation/userns.py)
  openssl apache2-utils # test CAs, certificates and token signing; htpasswd files for the auth tests
  python3 python3-venv # Debian's Python 3.11: world-readable, so tests can also run dockyard as a plain user
  groovy default-jre-headless # runs the Jenkins shared-library step in its tests (groovy 2.4, as Jenkins)
  rsync                # gitlab-ci-local copies the checkout and artifacts with it
  dpkg-dev             # dpkg-scanpackages: the loopback Debian repository of the package-manager tests
  podman runc          # runs the builder image (and the Tekton Task's steps) as a container runtime would
  dnf rpm createrepo-c # dnf in a test image (from this machine's files), rpmbuild and createrepo_c for its repository
  chromium chromium-driver # the documentation site's test opens the built site in headless Chromium (via chromedriver)
  curl                 # the release workflow's test: its stand-in PyPI upload (tests/support/release_actions)
  python3-matplotlib   # benchmarks/chart.py draws the benchmarks' comparison charts (PNG) with Debian's python3; not a runtime dependency
  qemu-user-static     # RUN for another CPU (linux/arm64, arm/v7, ...): QEMU's static emulators and Debian's binfmt definitions
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: @action-validator/cli (checks action.yml) and gitlab-ci-local (runs the GitLab component). Machines
# with Node.js from NodeSource already have it (their nodejs package conflicts with Debian's npm).
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# .deb files of Debian's own that tests install from a loopback repository (tests/support/debian_repo.py), fetched
# now because tests never reach Debian's mirror. Kept in .cache/debs (git-ignored). proot and libtalloc2: what the
# builder image's apt installs (images/builder/Dockerfile, tests/e2e/test_builder_image.py). qemu-user-static: the
# builder image's emulators for arm64 and arm/v7 come from it (a 62 MB download, taken from apt's own cache when
# the package was just installed from it).
TEST_DEBS=(busybox-static proot libtalloc2 qemu-user-static)
mkdir -p .cache/debs
for p in "${TEST_DEBS[@]}"; do
  compgen -G ".cache/debs/${p}_*.deb" >/dev/null && continue
  compgen -G "/var/cache/apt/archives/${p}_*.deb" >/dev/null && cp /var/cache/apt/archives/"${p}"_*.deb .cache/debs/ &&
    continue
  (cd .cache/debs && apt-get download -qq "$p" 2>/dev/null) ||
    { apt-get update -qq && (cd .cache/debs && apt-get download -qq "$p"); }
done

# The same busybox for two foreign CPUs (arm64, and armhf: linux/arm/v7), the base images of the emulated-RUN tests
# (tests/support/foreign_images.py). dpkg must know an architecture before apt can fetch its packages; adding one
# only widens what `apt-get update` reads, it installs nothing.
FOREIGN_DEBS=(busybox-static:arm64 busybox-static:armhf)
for p in "${FOREIGN_DEBS[@]}"; do
  name=${p%%:*} arch=${p##*:}
  compgen -G ".cache/debs/${name}_*_${arch}.deb" >/dev/null && continue
  dpkg --print-foreign-architectures | grep -qx "$arch" || { dpkg --add-architecture "$arch" && apt-get update -qq; }
  (cd .cache/debs && apt-get download -qq "$p" 2>/dev/null) ||
    { apt-get update -qq && (cd .cache/debs && apt-get download -qq "$p"); }
done

PYTHON=${PYTHON:-/usr/bin/python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# The test extra: pytest and its plugins, the tools tests run, and the static checks (scripts/lint.sh: ruff, mypy).
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# An editable install leaves dockyard's modules uncompiled, and with PYTHONDONTWRITEBYTECODE (CI images often set
# it) every command compiled them all again: 0.15 s per build. A regular pip install compiles them; so do we.
.venv/bin/python -m compileall -q core integrations >/dev/null
# The versions pinned in .ci/node/package-lock.json, into .ci/node/node_modules (git-ignored).
npm ci --prefix .ci/node --no-audit --no-fund --silent
echo "dockyard installed in .venv: $(.venv/bin/dockyard --version)"
