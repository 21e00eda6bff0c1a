"""The layout keeps its promises: data flows one way between the rooms of the package, no
module imports itself back through others, and the oracle is the tests' alone.

Imports are read from the source (`import` statements anywhere in a module, function-level
ones included; those under `if TYPE_CHECKING:` are types only and do not count).
"""

from __future__ import annotations

import ast
from pathlib import Path

import classifier

PACKAGE = Path(classifier.__file__).parent

# room -> the rooms it may import (besides itself). The order of the pipeline:
# policy -> acl -> pcap -> engine -> analysis / scale -> report -> cli.
BASE = {"errors", "codes", "_twins", "packets", "limits"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "codes": set(),
    "limits": set(),
    "_twins": set(),
    "packets": {"codes"},
    "reference": {"codes", "packets", "policy"},
    "policy": {"errors", "codes"},
    "acl": {"errors", "codes", "_twins"},
    "pcap": BASE,
    "engine": BASE | {"policy", "acl", "pcap"},
    "analysis": BASE | {"policy", "acl", "pcap", "engine"},
    # the scale-out checks that its workers run the package's version
    "scale": BASE | {"policy", "acl", "pcap", "engine", "__init__"},
    "report": BASE | {"policy", "acl", "pcap", "engine", "analysis", "scale", "__init__"},
    "cli": BASE | {"policy", "acl", "pcap", "engine", "analysis", "scale", "report", "__init__"},
    "__init__": {"errors", "policy", "engine", "analysis"},
    "__main__": {"cli"},
}
MAX_TOP_LEVEL_MODULES = 12


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """The classifier modules a source file imports at run time."""
    found: set[str] = set()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("classifier"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                )
            if base.startswith("classifier"):
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(
                        candidate
                        if (PACKAGE.parent / candidate.replace(".", "/")).exists()
                        or (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                        else base
                    )
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name != module_name(path)}


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in imports_of(path):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # a name imported from a module
            if target in modules and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def test_rooms_import_only_what_flows_into_them() -> None:
    wrong = []
    for source, targets in graph().items():
        for target in targets:
            a, b = room(source), room(target)
            if a != b and b not in ALLOWED.get(a, set()):
                wrong.append(f"{source} -> {target}")
    assert not wrong, wrong


def test_no_import_cycle() -> None:
    edges = graph()
    # a package's __init__ re-exports its modules: the edge from a module to its own package
    # is not a cycle of the layout
    for source in edges:
        edges[source] = {t for t in edges[source] if not source.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_oracle_is_for_the_tests_only() -> None:
    users = [source for source, targets in graph().items() if "classifier.reference" in targets]
    assert users == []


def test_few_modules_at_the_top() -> None:
    top = [p.name for p in PACKAGE.iterdir() if p.suffix in (".py", ".pyx")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, sorted(top)
