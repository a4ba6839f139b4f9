"""The package's import graph: no cycle between its subpackages (e.g. training and evaluation share
model loading and scoring through `synthrank.scoring`, neither imports the other for it)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import synthrank

PACKAGE = Path(synthrank.__file__).parent


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that can run, lazy ones in functions included; `if TYPE_CHECKING:` blocks left out."""
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for n in ast.walk(child)
    }
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def _unit(module: str) -> str:
    """A subpackage (`synthrank.run`), a stage (`synthrank.stages.train`, `synthrank.stages.mine`) or a
    top-level module (`synthrank.scoring`)."""
    parts = module.split(".")
    depth = 3 if len(parts) > 2 and parts[1] == "stages" else 2
    return ".".join(parts[:depth]) if len(parts) > depth or (PACKAGE / parts[-1]).is_dir() else module


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("synthrank", *path.relative_to(PACKAGE).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        here = _unit(module)
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: a relative import"
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("synthrank.") and _unit(name) != here:
                    graph.setdefault(here, set()).add(_unit(name))
    return graph


def _module_of(name: str) -> str | None:
    """The module that `import name` / `from x import y` (name = "x.y") runs: the longest prefix of
    `name` that is a module or subpackage of synthrank (None for the package itself or outside it)."""
    parts = name.split(".")
    if parts[0] != "synthrank":
        return None
    for end in range(len(parts), 1, -1):
        path = PACKAGE.joinpath(*parts[1:end])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts[:end])
    return None


def module_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports, lazy (function-level) imports included."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("synthrank", *path.relative_to(PACKAGE).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                names = [a.name for a in node.names]
            for name in names:
                target = _module_of(name)
                if target is not None and target != module:
                    graph.setdefault(module, set()).add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycle_between_subpackages() -> None:
    graph = package_graph()
    assert "synthrank.scoring" in graph.get("synthrank.stages.train", set())
    assert "synthrank.scoring" in graph.get("synthrank.stages.evaluate", set())
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycle_between_modules() -> None:
    """Not even through a function-level import (as `training.distill` <-> `training.trainer` had):
    the warm-start marker both need lives in `training.warm_start`."""
    graph = module_graph()
    assert "synthrank.stages.train.warm_start" in graph["synthrank.stages.train.trainer"]
    assert "synthrank.stages.train.trainer" in graph["synthrank.stages.distill"]  # the lazy import is seen
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package that does not exist
        return False


def test_every_module_and_path_readme_names_exists() -> None:
    """README's "How it works" and layout tables point at the code: each `synthrank.x.y` it names is
    a module (or a name in one) and each `python/synthrank/...` path exists."""
    root = Path(__file__).resolve().parents[1]  # the checkout (the tests may import an installed copy)
    readme = (root / "README.md").read_text(encoding="utf-8")
    for dotted in set(re.findall(r"`(synthrank(?:\.\w+)+)`", readme)):
        parts = dotted.split(".")
        # a module, or attributes of the longest importable prefix (e.g. synthrank.errors.exit_code)
        n = next(n for n in range(len(parts), 0, -1) if _is_module(".".join(parts[:n])))
        value = importlib.import_module(".".join(parts[:n]))
        for name in parts[n:]:
            assert hasattr(value, name), dotted
            value = getattr(value, name)
    for path in set(re.findall(r"python/synthrank/[\w/.-]+\w", readme)):
        assert (root / path).exists(), path
    for folder in ("stages", "run", "native", "llm", "cli"):
        assert f"`{folder}/`" in readme, folder
