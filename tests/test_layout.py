"""The package's shape: no module over 600 lines, no import cycle, usage/ below quotas/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "coderouter"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements run at import, without ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out += node.orelse
        elif isinstance(node, (ast.If, ast.Try)):
            out += node.body + getattr(node, "orelse", []) + [
                s for h in getattr(node, "handlers", []) for s in h.body]
        else:
            out.append(node)
    return out


def imports(name: str) -> set[str]:
    """The coderouter modules *name* imports when it is imported (function bodies aside)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _top_level(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {target for target in found if target in MODULES and target != name}


def cycles() -> list[list[str]]:
    """Each import cycle once, found by depth-first search."""
    graph = {name: sorted(imports(name)) for name in MODULES}
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in graph[name]:
            if state.get(target) == 1:
                found.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return found


def test_no_import_cycle() -> None:
    assert cycles() == []


def test_no_module_over_600_lines() -> None:
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > 600}
    assert long == {}


def test_usage_does_not_import_the_quotas() -> None:
    """The usage table is below the quotas: they read it, it knows nothing of them."""
    assert {(name, target) for name in MODULES if name.startswith("coderouter.usage")
            for target in imports(name) if target.startswith("coderouter.quotas")} == set()
