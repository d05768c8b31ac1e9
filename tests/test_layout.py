"""The package's floor plan, checked: every module imports by its dotted path, no face hides a
module behind another object, no private name crosses a package border, the command line uses
modules rather than the face, functions stay short, and sub-package faces re-export classes only.

Each check collects every violation and fails listing them all, so one run shows the whole debt.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "python"
PACKAGE = ROOT / "taskspace"
#: Modules every module may take private names from: the extension and the package-wide helpers.
SHARED_PRIVATE = ("taskspace._core", "taskspace._checks", "taskspace._toml")
#: Faces allowed to re-export functions: the package face and the Ray face.
FUNCTION_FACES = ("taskspace", "taskspace.distributed")
MAX_FUNCTION_LINES = 80
HAS_RAY = importlib.util.find_spec("ray") is not None


@dataclass(frozen=True)
class Module:
    """A source file of the package: its dotted name, path and parsed tree."""

    name: str
    path: Path
    is_package: bool

    @property
    def tree(self) -> ast.Module:
        return ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))

    @property
    def package(self) -> str:
        """The package this file's code belongs to (a package face belongs to itself)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @property
    def owner(self) -> str:
        """The sub-package (``taskspace.<layer>``) a file lives in, or ``taskspace`` for top-level files."""
        return owner_of(self.name if not self.is_package else self.name + ".__init__")

    @property
    def rel(self) -> str:
        return shown(self.path)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT.parent)) if path.is_relative_to(ROOT.parent) else str(path)


def owner_of(dotted: str) -> str:
    """``taskspace.<sub>`` for anything inside a sub-package, else ``taskspace``."""
    parts = dotted.split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 else "taskspace"


def module_owner(dotted: str) -> str:
    """The package whose code a module is: a sub-package's face belongs to the sub-package."""
    return owner_of(dotted + ".__init__") if ROOT.joinpath(*dotted.split(".")).is_dir() else owner_of(dotted)


def modules() -> list[Module]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out.append(Module(".".join(parts), path, is_package))
    return out


def submodule_names(package: str) -> set[str]:
    """The modules and packages directly inside ``package`` (files on disk, and the extension)."""
    directory = ROOT.joinpath(*package.split("."))
    names = {p.stem for p in directory.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in directory.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    names |= {p.name.split(".")[0] for p in directory.glob("*.so")} | {
        p.name.split(".")[0] for p in directory.glob("*.pyd")
    }
    return names


def is_module(dotted: str) -> bool:
    package, _, name = dotted.rpartition(".")
    return bool(package) and ROOT.joinpath(*package.split(".")).is_dir() and name in submodule_names(package)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def resolve(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def importable(name: str) -> bool:
    if name == "taskspace.__main__":  # runs the command line when imported, by design
        return False
    return HAS_RAY or not (name == "taskspace.distributed" or name.startswith("taskspace.distributed."))


def fail_with(violations: list[str], what: str) -> None:
    if violations:
        pytest.fail(f"{len(violations)} {what}:\n  " + "\n  ".join(violations), pytrace=False)


# -- (a) every module imports by its dotted path; no face shadows one of its modules ---------------


@pytest.mark.parametrize("name", [m.name for m in modules() if importable(m.name)])
def test_every_module_imports_by_its_dotted_path(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name
    assert sys.modules[name] is module


def shadowed(package_name: str, submodules: set[str]) -> Iterator[str]:
    """Names of a package face bound to something other than the submodule of that name."""
    package = importlib.import_module(package_name)
    for sub in sorted(submodules):
        dotted = f"{package_name}.{sub}"
        if not importable(dotted):
            continue
        module = importlib.import_module(dotted)
        bound = getattr(package, sub, module)
        if bound is not module:
            yield f"{package_name}: {sub!r} is bound to {bound!r}, which hides module {dotted}"


def test_no_face_binds_a_module_name_to_something_else() -> None:
    faces = [m for m in modules() if m.is_package and importable(m.name)]
    violations = [v for face in faces for v in shadowed(face.name, submodule_names(face.name))]
    fail_with(violations, "face names that hide a module")


# -- (b) no private name or private module crosses a package border --------------------------------


def private_imports(module: Module) -> Iterator[str]:
    """``path:line: import`` for every import of another package's private name or module."""

    def allowed(target: str) -> bool:
        return any(target == s or target.startswith(s + ".") for s in SHARED_PRIVATE)

    def private_module(target: str) -> bool:
        return any(is_private(p) for p in target.split(".")) and not allowed(target)

    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                if target.startswith("taskspace") and private_module(target):
                    if module_owner(target) != module.owner:
                        yield f"{module.rel}:{node.lineno}: import {target}"
        elif isinstance(node, ast.ImportFrom):
            source = resolve(module, node)
            if source != "taskspace" and not source.startswith("taskspace."):
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                imported = full if is_module(full) else source  # a submodule, or a name of `source`
                if module_owner(imported) == module.owner or allowed(full):
                    continue
                if is_private(alias.name):
                    yield f"{module.rel}:{node.lineno}: from {source} import {alias.name}"
                elif private_module(source):
                    yield f"{module.rel}:{node.lineno}: from {source} import {alias.name} (a private module)"


def test_no_private_name_crosses_a_package_border() -> None:
    violations = [v for m in modules() for v in private_imports(m)]
    fail_with(violations, "imports of another package's private names or modules")


# -- (c) the command line imports modules, never the face -------------------------------------------


def face_imports(module: Module) -> Iterator[str]:
    for node in ast.walk(module.tree):  # docstrings are strings, not imports: doctests do not count
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "taskspace":
                    yield f"{module.rel}:{node.lineno}: import taskspace"
        elif isinstance(node, ast.ImportFrom) and resolve(module, node) == "taskspace":
            for alias in node.names:
                if not is_module(f"taskspace.{alias.name}"):
                    yield f"{module.rel}:{node.lineno}: from taskspace import {alias.name}"


def test_the_command_line_does_not_import_the_face() -> None:
    cli = [m for m in modules() if m.name == "taskspace.cli" or m.name.startswith("taskspace.cli.")]
    assert cli, "no modules found below taskspace/cli"
    violations = [v for m in cli for v in face_imports(m)]
    fail_with(violations, "imports of the package face below taskspace/cli")


# -- (d) no function over 80 lines ------------------------------------------------------------------


def long_functions(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # From the `def` line (decorators excluded) to the last line, docstring included.
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                yield f"{shown(path)}:{node.lineno}: {node.name} has {lines} lines"


def test_no_function_is_over_80_lines() -> None:
    files = sorted(ROOT.rglob("*.py"))
    assert files
    violations = [v for path in files for v in long_functions(path)]
    fail_with(violations, f"functions over {MAX_FUNCTION_LINES} lines")


# -- (e) sub-package faces re-export classes only -----------------------------------------------------


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that bind names of the module itself (inside ``if``/``try`` too, not in functions)."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            todo.extend(ast.iter_child_nodes(node))  # type: ignore[arg-type]


def re_exports(face: Module) -> Iterator[str]:
    """The names a face binds by importing them from the package (standard and third-party
    imports are the face's own working tools, not re-exports)."""
    for node in module_level_imports(face.tree):
        if isinstance(node, ast.ImportFrom):
            source = resolve(face, node)
            if source == "taskspace" or source.startswith("taskspace."):
                yield from (alias.asname or alias.name for alias in node.names)
        else:
            for alias in node.names:
                if alias.name.startswith("taskspace") and alias.asname:
                    yield alias.asname


def not_a_class(face_name: str, name: str, value: object) -> str | None:
    """What a re-exported value is when it is neither a class (or type alias) nor the face's own
    submodule of that name; ``None`` when it is fine."""
    if isinstance(value, types.ModuleType) and value.__name__ == f"{face_name}.{name}":
        return None
    if inspect.isclass(value) or typing.get_origin(value) is not None:
        return None
    return "function" if callable(value) else type(value).__name__


def non_class_exports(face: Module) -> Iterator[str]:
    package = importlib.import_module(face.name)
    for name in re_exports(face):
        kind = not_a_class(face.name, name, getattr(package, name))
        if kind is not None:
            yield f"{face.rel}: {name} ({kind})"


def test_sub_package_faces_re_export_classes_only() -> None:
    faces = [m for m in modules() if m.is_package and m.name not in FUNCTION_FACES and importable(m.name)]
    assert faces
    violations = [v for face in faces for v in non_class_exports(face)]
    fail_with(violations, "sub-package face names that are not classes")


# -- the checks themselves catch what they are for ---------------------------------------------------


def _fake(tmp_path: Path, name: str, source: str, *, is_package: bool = False) -> Module:
    path = tmp_path / "fake.py"
    path.write_text(source, encoding="utf-8")
    return Module(name, path, is_package)


def test_the_checks_catch_violations(tmp_path: Path) -> None:
    bad = _fake(
        tmp_path,
        "taskspace.cli.fake",
        "import taskspace as ts\n"
        "from taskspace import Surrogate\n"
        "from taskspace import _checks, errors\n"
        "from taskspace.probing.runner import _Run\n"
        "from taskspace.distributed._probe import probe\n"
        "from ._common import render\n"
        "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES,
    )
    assert sorted(face_imports(bad)) == sorted(
        [f"{bad.rel}:1: import taskspace", f"{bad.rel}:2: from taskspace import Surrogate"]
    )
    found = list(private_imports(bad))
    assert len(found) == 2 and "_Run" in found[0] and "_probe" in found[1]
    assert [v.split(": ", 1)[1] for v in long_functions(bad.path)] == [
        f"f has {MAX_FUNCTION_LINES + 1} lines"
    ]
    own = _fake(tmp_path, "taskspace.probing.fake", "from taskspace.probing.runner import _Run\n")
    assert list(private_imports(own)) == []


def test_the_face_checks_catch_violations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "layoutfake"
    package.mkdir()
    (package / "thing.py").write_text("def thing() -> int:\n    return 1\n", encoding="utf-8")
    (package / "other.py").write_text("X = 1\n", encoding="utf-8")
    (package / "__init__.py").write_text("from layoutfake.thing import thing\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = list(shadowed("layoutfake", {"thing", "other"}))
    assert len(found) == 1 and "'thing' is bound to <function thing" in found[0]
    face = _fake(
        tmp_path,
        "taskspace.fakeface",
        "import json\nfrom taskspace.errors import ProbeError\nfrom .runner import probe as run\n"
        "import taskspace.errors as errs\ntry:\n    from taskspace.search.cosine import similarity\n"
        "except ImportError:\n    pass\ndef f():\n    from taskspace.report import spearman\n",
        is_package=True,
    )
    assert list(re_exports(face)) == ["ProbeError", "run", "errs", "similarity"]
    assert (
        not_a_class("taskspace.search", "cosine", importlib.import_module("taskspace.search.cosine")) is None
    )
    assert not_a_class("taskspace.x", "Index", ts_index()) is None
    assert not_a_class("taskspace.x", "f", len) == "function"
    assert not_a_class("taskspace.x", "N", 3) == "int"


def ts_index() -> type:
    from taskspace.search.index import Index

    return Index
