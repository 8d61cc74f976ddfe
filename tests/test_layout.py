"""The layout's rules, checked on the source tree: file size, import cycles, citations not history."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "densemtl"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _module_level_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """densemtl modules imported at import time (function-level imports are deliberate deferrals)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in names:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_source_file_is_over_the_limit() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_no_import_cycles_between_modules() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _module_level_imports(path, name, known) for name, path in modules.items()}
    # a package importing its own submodules to register them is not a cycle of logic: drop
    # parent -> child edges (``densemtl.weighting`` imports ``densemtl.weighting.fixed``, which
    # imports the registry back from its parent)
    graph = {n: {d for d in deps if not d.startswith(n + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_sources_cite_papers_not_project_history() -> None:
    pattern = re.compile(r"\b(seed[ -]?00\d|issue #?\d+)\b", re.IGNORECASE)
    hits = [
        f"{p.relative_to(SRC)}:{i}"
        for p in SRC.rglob("*")
        if p.suffix in (".py", ".yaml")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and "github.com" not in line
    ]
    assert not hits, f"project-history labels where a citation belongs: {hits}"
