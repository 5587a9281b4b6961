"""RUN for another CPU: which platforms this machine runs natively, which through QEMU's user-mode emulators,
and how. `require_emulation` is the build's preflight: every platform with a RUN must be runnable in the
build's mode before any work starts; `survey` is what `dockyard doctor` shows.

How a foreign platform's step runs, by mode:

  namespaces  the kernel's binfmt_misc starts the step's foreign programs through QEMU. Only an entry with the
              F flag serves: the kernel then opened the interpreter when it was registered, so it is found
              inside the step's root (which has no /usr/bin/qemu-*-static) and in any mount namespace. Root
              with CAP_SYS_ADMIN in the host's user namespace may register it: dockyard then mounts
              binfmt_misc where it is missing and registers Debian's own definition of that CPU (the
              qemu-user-static package's /usr/lib/binfmt.d/qemu-ARCH.conf, or /usr/share/binfmts/qemu-ARCH),
              with F. Registration is global to the machine and outlives the build; entries are never removed.
              (Root of a user namespace reads the host's entries but may not add to them.)
  proot       proot's own QEMU support, `proot -q qemu-ARCH-static`: proot starts every foreign program of the
              step through QEMU (and host programs as they are), with no privilege at all.

Which entry serves a platform is decided as the kernel decides: by the ELF header bytes of that CPU's
programs (class, byte order, e_machine), masked with the entry's own mask.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
from collections.abc import Collection, Iterable
from types import EllipsisType
from typing import Literal, NamedTuple

from ..errors import IsolationError
from ..events import Events, Message
from ..image.model import Platform

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
# Where Debian's qemu-user-static package keeps its binfmt definitions: a register line each (systemd's
# format), and update-binfmts' format.
BINFMT_D = ("/usr/lib/binfmt.d", "/etc/binfmt.d")
BINFMTS = "/usr/share/binfmts"
# Where the qemu-*-static programs are looked for: this directory alone (tests point it elsewhere), else PATH
# and /usr/bin.
QEMU_DIR_VARIABLE = "DOCKYARD_QEMU_DIR"
CAP_SYS_ADMIN = 21
PER_LINUX32 = 0x0008

# ELF header fields that tell CPUs apart.
ELFCLASS32, ELFCLASS64 = 1, 2
ET_EXEC, ET_DYN = 2, 3


class Cpu(NamedTuple):
    """A CPU as QEMU and ELF name it: the emulator's name (qemu-NAME-static) and its programs' ELF identity."""

    qemu: str
    elf_class: int
    big_endian: bool
    machine: int  # e_machine

    def headers(self) -> tuple[bytes, ...]:
        """The first 20 bytes of an executable and of a position-independent program for this CPU."""
        order: Literal["big", "little"] = "big" if self.big_endian else "little"
        ident = b"\x7fELF" + bytes([self.elf_class, 2 if self.big_endian else 1, 1]) + bytes(9)
        return tuple(ident + kind.to_bytes(2, order) + self.machine.to_bytes(2, order) for kind in (ET_EXEC, ET_DYN))


# Docker's architecture names (GOARCH) -> the CPU; a variant (arm/v6, arm/v7, arm64/v8) runs on its
# architecture's emulator. e_machine values from the ELF specification (elf.h).
CPUS: dict[str, Cpu] = {
    "amd64": Cpu("x86_64", ELFCLASS64, False, 62),
    "386": Cpu("i386", ELFCLASS32, False, 3),
    "arm64": Cpu("aarch64", ELFCLASS64, False, 183),
    "arm": Cpu("arm", ELFCLASS32, False, 40),
    "s390x": Cpu("s390x", ELFCLASS64, True, 22),
    "ppc64le": Cpu("ppc64le", ELFCLASS64, False, 21),
    "riscv64": Cpu("riscv64", ELFCLASS64, False, 243),
    "mips64le": Cpu("mips64el", ELFCLASS64, False, 8),
}
# The platforms `dockyard doctor` lists (docker's names; linux/arm/v6 is Debian's armel).
KNOWN_PLATFORMS = ("linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/s390x",
                   "linux/ppc64le", "linux/riscv64", "linux/mips64le")
# The kernel's machine name (uname -m) -> the architecture it runs natively.
MACHINES = {"x86_64": "amd64", "i686": "386", "i386": "386", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
            "armv8l": "arm", "s390x": "s390x", "ppc64le": "ppc64le", "riscv64": "riscv64", "mips64": "mips64le"}

_libc = ctypes.CDLL(None, use_errno=True)


class BinfmtEntry(NamedTuple):
    """A registered binfmt_misc entry, as /proc/sys/fs/binfmt_misc/NAME shows it."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    def matches(self, cpu: Cpu) -> bool:
        """Would the kernel start this CPU's programs through this entry?"""
        mask = self.mask or b"\xff" * len(self.magic)
        for header in cpu.headers():
            part = header[self.offset:self.offset + len(self.magic)]
            if len(part) == len(self.magic) and all(a & m == b & m for a, b, m in zip(part, self.magic, mask)):
                return True
        return False


class Definition(NamedTuple):
    """Debian's binfmt definition of a CPU's emulator: the line `register` takes, in its parts."""

    name: str
    offset: int
    magic: bytes
    mask: bytes
    interpreter: str
    flags: str

    def register_line(self, interpreter: str | None = None, flags: str | None = None) -> bytes:
        def escaped(data: bytes) -> bytes:
            return b"".join(b"\\x%02x" % byte for byte in data)

        return b":%s:M:%d:%s:%s:%s:%s" % (self.name.encode(), self.offset, escaped(self.magic), escaped(self.mask),
                                         (interpreter or self.interpreter).encode(),
                                         (self.flags if flags is None else flags).encode())


class Emulation(NamedTuple):
    """How a platform's RUN steps run in a mode: `how` is "native", "binfmt" (a registered entry), "register"
    (dockyard registers one at the build's start), "proot" (proot -q QEMU) or "none"; `detail` says with what,
    or why not; `hint` what to do about "none"."""

    platform: str
    how: str
    detail: str
    hint: str = ""
    qemu: str | None = None  # the emulator program (proot's -q)
    definition: Definition | None = None  # what "register" registers

    @property
    def runs(self) -> bool:
        return self.how != "none"


# --- what this machine is -----------------------------------------------------------------------------------
def host_architecture() -> str:
    machine = os.uname().machine
    return MACHINES.get(machine, machine)


@functools.cache
def _aarch32() -> bool:
    """Does this arm64 CPU run 32-bit ARM programs? The kernel refuses the 32-bit personality to a CPU without
    AArch32 (many arm64 servers, Apple's CPUs); tried in a child, whose personality dies with it."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _libc.personality(PER_LINUX32) != -1 else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def native(platform: Platform) -> str | None:
    """Why `platform` runs natively here (the sentence doctor shows), or None if it needs an emulator."""
    if platform.os != "linux":
        return None
    host = host_architecture()
    arch = platform.architecture
    if arch == host:
        return "native"
    if host == "amd64" and arch == "386":
        return "native (32-bit x86 programs run on a 64-bit x86 CPU)"
    if host == "arm64" and arch == "arm" and platform.variant not in ("v8",) and _aarch32():
        return "native (this 64-bit ARM CPU runs 32-bit ARM programs)"
    return None


def is_foreign(platform: str | Platform | None) -> bool:
    """Does a step of `platform` need an emulator here? (None: the builder's own platform.)"""
    if platform is None:
        return False
    parsed = Platform.parse(platform) if isinstance(platform, str) else platform
    return native(parsed) is None


def cpu_of(platform: Platform) -> Cpu | None:
    return CPUS.get(platform.architecture) if platform.os == "linux" else None


# --- QEMU ---------------------------------------------------------------------------------------------------
def qemu_program(cpu: Cpu) -> str | None:
    """The static user-mode emulator for `cpu` (qemu-user-static's qemu-NAME-static), or None. Only a static
    one serves: a step's root has no libraries of this machine."""
    name = f"qemu-{cpu.qemu}-static"
    directory = os.environ.get(QEMU_DIR_VARIABLE)
    if directory is not None:
        candidates = [os.path.join(directory, name)]
    else:
        candidates = [path for path in (shutil.which(name), os.path.join("/usr/bin", name)) if path]
    return next((path for path in candidates if os.path.isfile(path) and os.access(path, os.X_OK)), None)


def qemu_for(platform: str | None) -> str | None:
    """The emulator a proot step of `platform` runs through, or None where the platform is native."""
    if not is_foreign(platform):
        return None
    assert platform is not None
    cpu = cpu_of(Platform.parse(platform))
    return qemu_program(cpu) if cpu is not None else None


# --- binfmt_misc --------------------------------------------------------------------------------------------
def binfmt_mounted() -> bool:
    return os.path.exists(os.path.join(BINFMT_DIR, "register"))


def binfmt_enabled() -> bool:
    try:
        with open(os.path.join(BINFMT_DIR, "status")) as f:
            return f.read().strip() == "enabled"
    except OSError:
        return False


def binfmt_entries() -> list[BinfmtEntry] | None:
    """The registered entries, or None where binfmt_misc is not mounted (they cannot be read)."""
    if not binfmt_mounted():
        return None
    on = binfmt_enabled()  # when binfmt_misc is disabled as a whole, no entry serves
    entries = []
    for name in sorted(os.listdir(BINFMT_DIR)):
        if name in ("register", "status"):
            continue
        try:
            with open(os.path.join(BINFMT_DIR, name)) as f:
                entry = parse_entry(name, f.read())
        except OSError:
            continue  # removed meanwhile
        if entry is not None:
            entries.append(entry._replace(enabled=entry.enabled and on))
    return entries


def parse_entry(name: str, text: str) -> BinfmtEntry | None:
    """An entry from its /proc file; None for an extension entry (E), which no ELF program matches."""
    enabled, interpreter, flags, offset, magic, mask = False, "", "", 0, b"", b""
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if line.strip() in ("enabled", "disabled"):
            enabled = line.strip() == "enabled"
        elif key == "interpreter":
            interpreter = value
        elif key == "flags:":
            flags = value.strip()
        elif key == "offset":
            offset = int(value)
        elif key == "magic":
            magic = bytes.fromhex(value)
        elif key == "mask":
            mask = bytes.fromhex(value)
        elif key == "extension":
            return None
    return BinfmtEntry(name, enabled, interpreter, flags, offset, magic, mask)


def serving_entry(cpu: Cpu, entries: Iterable[BinfmtEntry]) -> BinfmtEntry | None:
    """The entry that starts `cpu`'s programs: an enabled one that matches (the kernel tries the most recently
    registered first; /proc lists them by name, so an enabled one with F is preferred)."""
    matching = [entry for entry in entries if entry.enabled and entry.matches(cpu)]
    return next((entry for entry in matching if "F" in entry.flags), matching[0] if matching else None)


def _unescape(text: str) -> bytes:
    """A binfmt magic or mask as binfmt.d and update-binfmts write it (\\xHH escapes, other bytes as they are)."""
    out = bytearray()
    index = 0
    while index < len(text):
        if text.startswith("\\x", index):
            out.append(int(text[index + 2:index + 4], 16))
            index += 4
        elif text.startswith("\\\\", index):
            out.append(ord("\\"))
            index += 2
        else:
            out += text[index].encode("latin-1")
            index += 1
    return bytes(out)


def parse_register_line(line: str) -> Definition | None:
    """`:name:M:offset:magic:mask:interpreter:flags` (systemd's binfmt.d format); None for another kind."""
    line = line.strip()
    if not line or line.startswith(("#", ";")):
        return None
    fields = line[1:].split(line[0])
    if len(fields) < 6 or fields[1] != "M":
        return None
    name, _, offset, magic, mask, interpreter = fields[:6]
    flags = fields[6] if len(fields) > 6 else ""
    return Definition(name, int(offset or 0), _unescape(magic), _unescape(mask), interpreter, flags)


def parse_binfmts(name: str, text: str) -> Definition | None:
    """A definition in update-binfmts' format (/usr/share/binfmts/NAME)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        values[key] = value.strip()
    if "magic" not in values or "interpreter" not in values:
        return None
    flags = "".join(flag for key, flag in (("preserve", "P"), ("credentials", "C"), ("fix_binary", "F"))
                    if values.get(key) == "yes")
    return Definition(name, int(values.get("offset") or 0), _unescape(values["magic"]),
                      _unescape(values.get("mask", "")), values["interpreter"], ("O" if "P" in flags else "") + flags)


def debian_definition(cpu: Cpu) -> Definition | None:
    """Debian's own binfmt definition of `cpu`'s emulator (qemu-user-static ships them), or None."""
    name = f"qemu-{cpu.qemu}"
    for directory in BINFMT_D:
        try:
            with open(os.path.join(directory, f"{name}.conf")) as f:
                for line in f:
                    definition = parse_register_line(line)
                    if definition is not None:
                        return definition
        except OSError:
            continue
    try:
        with open(os.path.join(BINFMTS, name)) as f:
            return parse_binfmts(name, f.read())
    except OSError:
        return None


def may_register() -> str | None:
    """None if this process may register binfmt_misc entries (root with CAP_SYS_ADMIN in the host's user
    namespace), else why not."""
    from ..rootfs.overlay import in_user_namespace

    if os.geteuid() != 0:
        return "not root"
    if in_user_namespace():
        return "root of a user namespace, whose binfmt_misc registrations the kernel keeps apart from the host's"
    with open("/proc/self/status") as f:
        effective = next((int(line.split()[1], 16) for line in f if line.startswith("CapEff:")), 0)
    if not effective >> CAP_SYS_ADMIN & 1:
        return "no CAP_SYS_ADMIN"
    return None


def _registration(cpu: Cpu, definition: Definition) -> tuple[Definition, str, str] | None:
    """(definition, interpreter, flags) to register for `cpu`: Debian's line as it is (with F added) where its
    interpreter is the emulator dockyard found; else that emulator, with Debian's magic and mask and the flag F
    (Debian's P flag belongs to its interpreter's name: qemu learns of a preserved argv[0] from it)."""
    program = qemu_program(cpu)
    if program is None:
        return None
    flags = definition.flags if "F" in definition.flags else definition.flags + "F"
    if os.path.exists(definition.interpreter) and os.path.realpath(definition.interpreter) == os.path.realpath(program):
        return definition, definition.interpreter, flags
    return definition, program, "F"


# --- how each platform runs ---------------------------------------------------------------------------------
def emulation(platform: Platform, mode: str, entries: list[BinfmtEntry] | EllipsisType | None = ...,
              registrable: str | EllipsisType | None = ...) -> Emulation:
    """How `platform`'s steps run in `mode` ("namespaces", "userns" or "proot"). `entries` and `registrable`
    (binfmt_entries(), registrable_in(mode)) are read here unless given: callers asking for several platforms
    read them once."""
    name = str(platform)
    why_native = native(platform)
    if why_native is not None:
        return Emulation(name, "native", why_native)
    cpu = cpu_of(platform)
    if platform.os != "linux":
        return Emulation(name, "none", f"RUN steps run Linux programs only, not {platform.os} ones",
                         hint=f"build {name} with a builder of that system")
    if cpu is None:
        return Emulation(name, "none", f"dockyard knows no emulator for the {platform.architecture} CPU",
                         hint=f"build {name} on a machine of that CPU (a native CI runner) and join the images "
                              "with `dockyard manifest create`")
    install = (f"install QEMU's user-mode emulators (apt-get install qemu-user-static), or build {name} on a "
               "native runner and join the images with `dockyard manifest create`")
    if mode == "proot":
        program = qemu_program(cpu)
        if program is None:
            where = os.environ.get(QEMU_DIR_VARIABLE)
            return Emulation(name, "none", f"no QEMU emulator qemu-{cpu.qemu}-static "
                                           + (f"in {where} ({QEMU_DIR_VARIABLE})" if where else "is installed"),
                             hint=install + f"; in a container, mount a directory holding qemu-{cpu.qemu}-static "
                                            f"(the host's /usr/bin) and name it in {QEMU_DIR_VARIABLE}")
        return Emulation(name, "proot", f"proot -q {program}", qemu=program)
    return _binfmt_emulation(platform, cpu, mode, binfmt_entries() if entries is ... else entries,
                             registrable_in(mode) if registrable is ... else registrable, install)


def _binfmt_emulation(platform: Platform, cpu: Cpu, mode: str, entries: list[BinfmtEntry] | None,
                      registrable: str | None, install: str) -> Emulation:
    name, arch = str(platform), platform.architecture
    elsewhere = (f"register it on the host once (`docker run --privileged --rm tonistiigi/binfmt --install {arch}`, "
                 "or Debian's qemu-user-static package, whose binfmt definitions have the F flag), or run dockyard "
                 "as root with CAP_SYS_ADMIN, which registers it itself; or build it with --isolation=proot "
                 f"(proot -q qemu-{cpu.qemu}-static), or on a native runner")
    entry = serving_entry(cpu, entries) if entries else None
    if entry is not None and "F" in entry.flags:
        return Emulation(name, "binfmt", f"binfmt_misc: {entry.name} registered ({entry.interpreter}, "
                                         f"flags {entry.flags})")
    if entry is not None:
        return Emulation(name, "none", f"binfmt_misc's {entry.name} entry lacks the F flag: its interpreter "
                                       f"{entry.interpreter} cannot be found inside a step's root",
                         hint=f"register it again with the F flag (`docker run --privileged --rm tonistiigi/binfmt "
                              f"--install {arch}` does), or build with --isolation=proot")
    disabled = next((e for e in entries or () if e.matches(cpu)), None)
    if disabled is not None:
        return Emulation(name, "none", f"binfmt_misc's {disabled.name} entry is disabled (or binfmt_misc as a whole)",
                         hint=f"enable it (echo 1 > {BINFMT_DIR}/{disabled.name}, and {BINFMT_DIR}/status), or "
                              "build with --isolation=proot")
    definition = debian_definition(cpu)
    if registrable is None and mode == "namespaces":
        if definition is None:
            return Emulation(name, "none", f"no QEMU emulator for {cpu.qemu} is registered, and Debian's binfmt "
                                           f"definition of qemu-{cpu.qemu} is not installed", hint=install)
        registration = _registration(cpu, definition)
        if registration is None:
            return Emulation(name, "none", f"no QEMU emulator for {cpu.qemu} is registered or installed "
                                           f"(qemu-{cpu.qemu}-static)", hint=install)
        chosen, interpreter, flags = registration
        return Emulation(name, "register", f"binfmt_misc: {chosen.name} is not registered yet; the build "
                                            f"registers Debian's definition ({interpreter}, flags {flags})",
                         qemu=interpreter, definition=chosen._replace(interpreter=interpreter, flags=flags))
    if entries is None:
        return Emulation(name, "none", f"binfmt_misc is not mounted here ({BINFMT_DIR}), so no registered "
                                       f"emulator for {cpu.qemu} can be seen, and this process may not register "
                                       f"one ({registrable})",
                         hint=f"mount it on the host (mount -t binfmt_misc binfmt_misc {BINFMT_DIR}) and {elsewhere}")
    return Emulation(name, "none", f"no QEMU emulator for {cpu.qemu} is registered in binfmt_misc, and this "
                                   f"process may not register one ({registrable})",
                     hint=elsewhere)


def registrable_in(mode: str) -> str | None:
    """None if a build in `mode` may register binfmt_misc entries, else why not."""
    if mode == "namespaces":
        return may_register()
    if mode == "userns":
        return "a build in the userns mode is root of its own user namespace only"
    return "not the namespaces mode"


def survey(mode: str, platforms: Iterable[str] = KNOWN_PLATFORMS) -> list[Emulation]:
    """How each platform's steps would run in `mode`: what `dockyard doctor` lists."""
    entries = binfmt_entries() if mode != "proot" else None
    return [emulation(Platform.parse(text), mode, entries, registrable_in(mode)) for text in platforms]


# --- the preflight ------------------------------------------------------------------------------------------
def require_emulation(platforms: Collection[Platform], mode: str, *, events: Events) -> None:
    """Every platform in `platforms` (those with a RUN step) can run here in `mode`, or IsolationError naming
    the first that cannot, and what to do, before any work starts. Registers Debian's binfmt definition
    where that is what a platform needs and may be done (an info event says so)."""
    foreign = sorted({p for p in platforms if native(p) is None}, key=str)
    if not foreign:
        return
    entries = binfmt_entries() if mode != "proot" else None
    registrable = registrable_in(mode)
    for platform in foreign:
        found = emulation(platform, mode, entries, registrable)
        if found.how == "register":
            assert found.definition is not None
            found = _register(found, found.definition)
            entries = binfmt_entries()
        if not found.runs:
            raise IsolationError(f"RUN steps for {found.platform} need an emulator of that CPU, and none can run "
                                 f"here: {found.detail}", hint=found.hint or None)
        if found.how == "registered":
            text = f"emulation: registered {found.detail}: RUN steps for {found.platform} run through QEMU"
        else:
            text = f"emulation: RUN steps for {found.platform} run through QEMU ({found.detail})"
        events.emit(Message(level="info", text=text))


def _register(found: Emulation, definition: Definition) -> Emulation:
    """Registers `definition` (mounting binfmt_misc first where it is not); the emulation that results."""
    if not binfmt_mounted():
        if _libc.mount(b"binfmt_misc", BINFMT_DIR.encode(), b"binfmt_misc", 0, None) != 0:
            code = ctypes.get_errno()
            return found._replace(how="none", detail=f"binfmt_misc cannot be mounted on {BINFMT_DIR} "
                                                     f"({os.strerror(code)})",
                                  hint="mount it and register QEMU on the host, or build with --isolation=proot")
    line = definition.register_line()
    try:
        with open(os.path.join(BINFMT_DIR, "register"), "wb") as f:
            f.write(line)
    except OSError as exc:
        if exc.errno != errno.EEXIST:  # EEXIST: registered meanwhile (another build): checked below
            return found._replace(how="none", detail=f"registering {definition.name} in binfmt_misc failed "
                                                     f"({exc.strerror})",
                                  hint="register QEMU on the host, or build with --isolation=proot")
    cpu = cpu_of(Platform.parse(found.platform))
    assert cpu is not None  # there is a definition to register
    entry = serving_entry(cpu, binfmt_entries() or [])
    if entry is None or "F" not in entry.flags:
        return found._replace(how="none", detail=f"binfmt_misc's entry {definition.name} exists but does not serve "
                                                 "with the F flag", hint="re-register it with the F flag")
    return found._replace(how="registered", detail=f"{entry.name} in binfmt_misc for {found.platform} "
                                                   f"({entry.interpreter}, flags {entry.flags})")
