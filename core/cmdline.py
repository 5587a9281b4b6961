"""Secret values given on dockyard's own command line, hidden from /proc/PID/cmdline.

Every process of the machine may read every other's command line (a proot RUN step included: Landlock cannot
close it), and CI recipes pass tokens that way (`--build-arg NPM_TOKEN=$NPM_TOKEN`, kaniko's habit). The kernel
shows the command line from the process's own memory (between mm->arg_start and arg_end), and Python has copied
it into sys.argv at start-up; so the CLI overwrites the values there with asterisks of the same length, as
setproctitle does, before it starts any RUN. What remains visible: the option and the build arg's name.
"""

from __future__ import annotations

# Options whose value is a secret, or (build args) ends with one after the first "=".
SECRET_OPTIONS = (b"--build-arg", b"--password", b"-p")


def masked(args: list[bytes]) -> list[bytes]:
    """`args` (a command line) with the values of SECRET_OPTIONS turned into asterisks of the same length:
    build-arg values (`KEY=VALUE`: VALUE) and passwords, given as `--option VALUE` or `--option=VALUE`."""
    out = list(args)
    for index, arg in enumerate(args):
        option, equals, inline = arg.partition(b"=")
        if option not in SECRET_OPTIONS:
            continue
        at = index if equals else index + 1
        if at >= len(out):
            continue
        head, _, value = out[at].partition(b"=") if equals else (b"", b"", out[at])
        if option == b"--build-arg":
            name, equals_in_value, value = value.partition(b"=")
            head = (head + b"=" if equals else b"") + name + equals_in_value
        elif equals:
            head += b"="
        if value:
            out[at] = head + b"*" * len(value)
    return out


def hide_secrets() -> bool:
    """Masks this process's original command line in place; False where it cannot (/proc/self/mem refuses
    writes, or the area is not what /proc/self/stat says)."""
    try:
        with open("/proc/self/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end: fields 48 and 49
        with open("/proc/self/mem", "r+b", buffering=0) as memory:
            memory.seek(start)
            area = memory.read(end - start)
            args = area.rstrip(b"\0").split(b"\0")
            hidden = b"\0".join(masked(args))
            if hidden == area.rstrip(b"\0"):
                return True
            memory.seek(start)
            memory.write(hidden)
    except (OSError, IndexError, ValueError):
        return False
    return True
