"""The package's layers: every import goes down or sideways within a layer, and no module imports
itself back through others (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ccvae_tools"

# lowest first; a module may import its own layer and the layers before it (docs/architecture.md)
LAYERS = ["util", "data", "objective", "model", "interventions", "render", "animation", "evaluation", "training",
          "studio", "report", "cli"]
TOP = {"__init__": 0, "__main__": len(LAYERS), "api": LAYERS.index("model")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (`from pkg import sub` counts as pkg.sub)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ccvae_tools"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if _is_module(sub) else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("ccvae_tools"))
        graph[_module_name(path)] = deps - {_module_name(path)}
    return graph


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0                                   # the package itself: its version only
    head = parts[1]
    return LAYERS.index(head) if head in LAYERS else TOP[head]


def test_no_module_imports_a_higher_layer():
    wrong = [f"{m} -> {d}" for m, deps in import_graph().items() for d in deps
             if d != "ccvae_tools" and layer_of(d) > layer_of(m)]
    assert not wrong, "imports of a higher layer:\n" + "\n".join(sorted(wrong))


def test_no_import_circles():
    graph = import_graph()
    # a package's __init__ runs before its modules; importing the package itself is not a circle
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep in path:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(node)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))


def test_every_sub_package_says_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.parent.name}/__init__.py needs a docstring: what it owns, what it may import"
