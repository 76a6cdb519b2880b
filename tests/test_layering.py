"""The package's architecture, checked from its imports (every import, also inside functions):
dependencies point one way, core <- evaluation <- adversarial <- organism <- commands, and no two
modules import each other, directly or through others."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "emergent_alignment"
LAYERS = ["core", "evaluation", "adversarial", "organism", "commands"]  # each may import only those before it


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path) -> set[str]:
    """The project modules `path` imports, anywhere in the file, resolved to absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("emergent_alignment")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("emergent_alignment"):
                target = node.module
            else:
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from . import world` names a module
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {t for t in imports(p) if t in files and t != m} for m, p in files.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "core"


def test_dependencies_point_one_way():
    wrong = [
        f"{m} ({layer(m)}) imports {t} ({layer(t)})"
        for m, targets in graph().items()
        for t in targets
        if LAYERS.index(layer(t)) > LAYERS.index(layer(m)) and m != "emergent_alignment.cli"
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    g = graph()
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(g[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_no_private_names_imported_across_modules():
    bad = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("emergent_alignment")
            ):
                bad += [f"{module_name(p)}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", ["argparse"])
def test_library_modules_do_not_parse_arguments(module):
    bad = [
        module_name(p)
        for p in PACKAGE.rglob("*.py")
        if layer(module_name(p)) != "commands"
        and module_name(p) != "emergent_alignment.cli"
        and module in imports_any(p)
    ]
    assert not bad, bad


def imports_any(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
    return names
