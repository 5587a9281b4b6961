"""Masking secret values on dockyard's own command line (core/cmdline.py)."""

from __future__ import annotations

import subprocess
import sys

from dockyard.cmdline import masked


def test_build_arg_values_and_passwords_are_masked_names_kept():
    args = [b"dockyard", b"build", b"--build-arg", b"TOKEN=abc", b"--build-arg=X=yz", b"--build-arg", b"FROMENV",
            b"-t", b"img:1", b"--password=pw2", b"-p", b"pw", b"--build-arg"]
    assert masked(args) == [b"dockyard", b"build", b"--build-arg", b"TOKEN=***", b"--build-arg=X=**",
                            b"--build-arg", b"FROMENV", b"-t", b"img:1", b"--password=***", b"-p", b"**",
                            b"--build-arg"]


def test_a_process_masks_its_own_command_line():
    code = ("from dockyard.cmdline import hide_secrets; assert hide_secrets(); "
            "print(open('/proc/self/cmdline', 'rb').read().replace(b'\\0', b' ').decode())")
    shown = subprocess.run([sys.executable, "-c", code, "--build-arg", "K=hidden-7f3"], capture_output=True,
                           text=True, check=True).stdout
    assert "K=**********" in shown and "hidden-7f3" not in shown
