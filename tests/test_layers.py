"""The rule of docs/architecture.md: every import inside alad_kit goes to its own floor or a lower one, and no
modules import each other in a circle (imports inside functions count too)."""

import ast
from pathlib import Path

import alad_kit

PACKAGE = Path(alad_kit.__file__).parent
# core.io (the atomic writer, stdlib only) lies under adapter.py, which writes its files through it.
FLOORS = ["core.io", "adapter", "core", "models", "data", "compress", "tasks", "training", "analysis", "pipeline", "ui",
          "__init__", "cli"]


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    name = _module(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def _floor(module: str) -> int:
    parts = module.split(".")
    if ".".join(parts[1:3]) in FLOORS:
        return FLOORS.index(".".join(parts[1:3]))
    return FLOORS.index(parts[1] if len(parts) > 1 else "__init__")


def test_every_module_lives_on_a_floor():
    loose = [m for m in _graph() if len(m.split(".")) == 2 and m.split(".")[1] not in FLOORS]
    assert not loose, f"modules outside the floors of docs/architecture.md: {loose}"


def test_imports_only_go_down():
    up = sorted(f"{a} -> {b}" for a, deps in _graph().items() for b in deps if _floor(b) > _floor(a))
    assert not up, "imports to a higher floor:\n" + "\n".join(up)


def test_no_import_circles():
    graph, state, circles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                circles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_core_io_is_the_ground_floor():
    graph = _graph()
    assert _floor("alad_kit.core.io") < _floor("alad_kit.adapter") < _floor("alad_kit.core.config")
    assert graph["alad_kit.core.io"] == set()  # stdlib only: nothing of the package under it
    assert graph["alad_kit.adapter"] == {"alad_kit.core.io"}
