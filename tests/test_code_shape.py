"""The shape of the source, as issues 15 and 29 set it: no function over 60 lines and no file over 350 in
src/, no import cycle inside loralab (imports inside functions count: a lazy import is still a
dependency), and no branching on the system's name outside the system packages (the CLI,
config, engine, reports and estimator ask the system through its contract instead).

Each failure lists every offender, so one run shows all that is left to do."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "loralab"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 350
SYSTEM_PACKAGES = ("speech", "protein")


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _where(path: Path) -> str:
    return str(path.relative_to(SRC)) if path.is_relative_to(SRC) else str(path)


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:line name (N lines)`` of every function or method longer than ``limit`` lines
    (decorators and docstring included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - start + 1
            if length > limit:
                found.append(f"{_where(path)}:{start} {node.name} ({length} lines)")
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the loralab modules it imports, anywhere in its body."""
    paths = {_module_name(p): p for p in _sources()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in paths}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    if f"{base}.{alias.name}" in paths:
                        deps.add(f"{base}.{alias.name}")  # a submodule
                    elif base in paths:
                        deps.add(base)  # a name defined in the module
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


_SYSTEM_NAME = re.compile(r"(^|_)system(_name)?$")


def _names_the_system(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return bool(_SYSTEM_NAME.search(node.id))
    if isinstance(node, ast.Attribute):
        return bool(_SYSTEM_NAME.search(node.attr))
    if isinstance(node, ast.Constant):
        return node.value in SYSTEM_PACKAGES
    return False


def system_branches(path: Path) -> list[str]:
    """``file:line`` of each comparison (==, !=, in, not in) or ``match`` on the system's name
    (a variable or attribute called ``system``/``*_system``/``system_name``, or the literal
    'speech'/'protein')."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops
        ):
            if any(_names_the_system(operand) for operand in [node.left, *node.comparators]):
                found.append(f"{_where(path)}:{node.lineno}")
        elif isinstance(node, ast.Match) and _names_the_system(node.subject):
            found.append(f"{_where(path)}:{node.lineno}")
    return found


def test_no_function_over_60_lines_and_no_file_over_350():
    too_long = [f for p in _sources() for f in long_functions(p)]
    too_big = [
        f"{p.relative_to(SRC)} ({n} lines)"
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert not too_long and not too_big, (
        f"functions over {MAX_FUNCTION_LINES} lines: {too_long}; files over {MAX_FILE_LINES} lines: "
        f"{too_big} (cut them into named steps)"
    )


def test_no_import_cycle_inside_loralab():
    found = cycles(import_graph())
    assert not found, f"import cycles (lazy imports included): {found}"


def test_the_checks_can_fail(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    sample = tmp_path / "sample.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample.write_text(f"def long():\n{body}\n\n\ndef branch(cfg):\n    return cfg.system == 'speech'\n")
    assert [f.split()[1] for f in long_functions(sample, MAX_FUNCTION_LINES)] == ["long"]
    assert len(system_branches(sample)) == 1
    assert "loralab.protein.evaluate" in import_graph()["loralab.protein.contract"]


def test_no_branching_on_the_system_name_outside_the_systems():
    outside = [p for p in _sources() if p.relative_to(PACKAGE).parts[0] not in SYSTEM_PACKAGES]
    found = [b for p in outside for b in system_branches(p)]
    assert not found, f"code outside {', '.join(SYSTEM_PACKAGES)} branches on the system's name: {found}"
