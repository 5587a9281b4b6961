"""The house rules on how dockyard's modules depend on each other, read from the source (no import runs):
no import cycles in core/, no use of another module's private names, and the CI adapters on the public API only.

A failure lists every offender, so that one run says everything there is to fix.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


import dockyard
import dockyard.errors
import dockyard.events

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
INTEGRATIONS = ROOT / "integrations"
# The import packages the two directories install as (pyproject.toml's package-dir).
PACKAGES = {CORE: "dockyard", INTEGRATIONS: "dockyard_integrations"}
PUBLIC_MODULES = {"dockyard.events": dockyard.events, "dockyard.errors": dockyard.errors}

# Private names of the standard library and third-party packages that are used on purpose. Each says why.
ALLOWED_PRIVATE = {
    "os._exit",  # a forked child ends without running the parent's cleanup (atexit, buffers)
    "sys._getframe",  # the caller's frame, where no public equivalent exists
    "sys._current_frames",  # every thread's stack, for a diagnostic dump
    "argparse._SubParsersAction",  # the type add_subparsers returns, which argparse gives no public name
    # namedtuple's methods and fields are public API despite their underscore (it keeps field names free)
    "*._replace", "*._asdict", "*._fields", "*._make",
}


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. dockyard.diagnostics.check
    path: Path
    tree: ast.Module

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else str(self.path)

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def modules(directory: Path, package: str | None = None) -> dict[str, Module]:
    """Every module under `directory`, by its dotted name in `package` (default: what the directory installs as)."""
    found = {}
    for path in sorted(directory.rglob("*.py")):
        parts = list(path.relative_to(directory).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join([package or PACKAGES[directory], *parts])
        found[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def resolved_from(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module a `from X import ...` names as X."""
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(module: Module, known: dict[str, Module]) -> Iterator[str]:
    """Every module of `known` that `module` imports, anywhere in it: at the top, in functions, under
    TYPE_CHECKING. `from X import name` imports X.name when that is a module, else X (the name is an attribute
    X defines). Importing a.b.c imports the packages a.b too, except `module`'s own (they are imported first
    whatever it does)."""
    direct: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            direct.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = resolved_from(module, node)
            for alias in node.names:
                direct.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    own = {module.name.rsplit(".", i)[0] for i in range(module.name.count(".") + 1)}
    for target in direct:
        if target in known and target != module.name:
            yield target
        parts = target.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in known and parent not in own:
                yield parent


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components of more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def import_cycles() -> list[list[str]]:
    known = modules(CORE)
    graph = {name: set(imported_modules(module, known)) for name, module in known.items()}
    return strongly_connected(graph)


def test_the_cycle_finder_finds_cycles_and_only_them() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_the_import_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = tmp_path / "core"
    (source / "pkg").mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "pkg" / "__init__.py").write_text("")
    (source / "pkg" / "leaf.py").write_text("")
    (source / "other.py").write_text("")
    (source / "user.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .other import X\n"
                                    "def f():\n    from .pkg import leaf\n")
    known = modules(source, "dockyard")
    assert set(known) == {"dockyard", "dockyard.pkg", "dockyard.pkg.leaf", "dockyard.other", "dockyard.user"}
    assert set(imported_modules(known["dockyard.user"], known)) == {"dockyard.other", "dockyard.pkg.leaf",
                                                                   "dockyard.pkg"}
    # A module of pkg importing its sibling does not depend on pkg's __init__ for it; `from . import NAME` of an
    # attribute does.
    (source / "pkg" / "sibling.py").write_text("from . import leaf\nfrom . import VALUE\n")
    known = modules(source, "dockyard")
    assert set(imported_modules(known["dockyard.pkg.sibling"], known)) == {"dockyard.pkg.leaf", "dockyard.pkg"}


def test_no_import_cycles_in_core() -> None:
    cycles = import_cycles()
    assert not cycles, "import cycles in core/ (each line: the modules of one cycle):\n" + "\n".join(
        " ".join(cycle) for cycle in cycles)


def test_no_import_cycle_through_the_package_or_the_api() -> None:
    """What the public API is made of never imports it back: the package's lazy names and the api module."""
    cycles = [c for c in import_cycles()
              if {"dockyard", "dockyard.api", "dockyard.cli", "dockyard.diagnostics", "dockyard.builder"} & set(c)]
    assert not cycles, "\n".join(" ".join(cycle) for cycle in cycles)


# --- private names -----------------------------------------------------------------------------------------

def defined_private_names(tree: ast.Module) -> set[str]:
    """The private names a module defines itself: functions, classes, assignments and attributes it sets."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if _private(n)}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(module: Module) -> Iterator[str]:
    """`from X import _name`, and `EXPR._attr` where EXPR is not self or cls and _attr is not one of the
    module's own names (a class reading its own private attribute of another instance is no offence)."""
    own = defined_private_names(module.tree)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            source = resolved_from(module, node)
            for alias in node.names:
                if _private(alias.name) and f"{source}.{alias.name}" not in ALLOWED_PRIVATE:
                    yield f"{module.where}:{node.lineno}: from {source} import {alias.name}"
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = ast.unparse(node.value)
            if owner in ("self", "cls") or node.attr in own:
                continue
            if f"{owner}.{node.attr}" in ALLOWED_PRIVATE or f"*.{node.attr}" in ALLOWED_PRIVATE:
                continue
            yield f"{module.where}:{node.lineno}: {owner}.{node.attr}"


def test_the_private_name_reader_finds_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "m.py").write_text(
        "from .other import _hidden, shown\nimport os\n"
        "class A:\n    def __init__(self):\n        self._mine = 1\n"
        "    def __eq__(self, other):\n        return self._mine == other._mine\n"
        "def f(thing):\n    os._exit(0)\n    return thing._secret, thing.__class__, thing._replace(a=1), "
        "thing.part._inner\n")
    found = [use.split(": ", 1)[1] for use in private_uses(modules(tmp_path / "core", "dockyard")["dockyard.m"])]
    assert found == ["from dockyard.other import _hidden", "thing._secret", "thing.part._inner"]


def test_no_module_uses_another_modules_private_names() -> None:
    offenders = [use for directory in (CORE, INTEGRATIONS) for module in modules(directory).values()
                 for use in private_uses(module)]
    assert not offenders, "uses of another module's private names:\n" + "\n".join(offenders)


# --- the adapters on the public API ------------------------------------------------------------------------

def adapter_imports_of_internals(module: Module) -> Iterator[str]:
    """Imports of dockyard's names that are not public: anything but `dockyard`'s `__all__` and the public
    modules' `__all__`."""
    where = module.where
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("dockyard.") and alias.name not in PUBLIC_MODULES:
                    yield f"{where}:{node.lineno}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and not node.level:
            source = node.module or ""
            if source == "dockyard":
                public = set(dockyard.__all__)
            elif source in PUBLIC_MODULES:
                public = set(PUBLIC_MODULES[source].__all__)
            elif source.startswith("dockyard."):
                public = set()
            else:
                continue
            for alias in node.names:
                if alias.name not in public:
                    yield f"{where}:{node.lineno}: from {source} import {alias.name}"


def test_the_adapter_import_reader_tells_public_from_internal(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "m.py").write_text(
        "import dockyard\nimport dockyard.events\nimport dockyard.builder\nfrom dockyard import build, cli\n"
        "from dockyard.errors import UsageError\nfrom dockyard.events import Events, Renderer\n"
        "from dockyard.progress import format_size\n")
    found = [use.split(": ", 1)[1]
             for use in adapter_imports_of_internals(modules(tmp_path / "core", "dockyard")["dockyard.m"])]
    assert sorted(found) == ["from dockyard import cli", "from dockyard.events import Renderer",
                             "from dockyard.progress import format_size", "import dockyard.builder"]


def test_adapters_import_only_dockyards_public_names() -> None:
    offenders = [use for module in modules(INTEGRATIONS).values() for use in adapter_imports_of_internals(module)]
    assert not offenders, "adapters importing dockyard's internals:\n" + "\n".join(offenders)


def test_every_package_directory_is_installed() -> None:
    """pyproject.toml lists the packages a regular install (the GitHub Action's, the builder image's) ships; a
    package directory missing there works in the editable install of the tests and breaks every real one."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    # A directory of modules is a package (one without __init__.py is a namespace package, installed as well).
    on_disk = {module.package for directory in PACKAGES for module in modules(directory).values()}
    assert on_disk == listed, f"pyproject.toml's packages differ from the package directories: {on_disk ^ listed}"
