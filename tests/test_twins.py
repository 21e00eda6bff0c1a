"""Each compiled module and its pure-Python twin offer the names of the module's `.pyi` stub,
with the same parameters, and each room's dispatcher reaches both."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from classifier._twins import Twin
from classifier.acl.kernels import lookup_kernels
from classifier.engine.kernels import conntrack_kernels, engine_kernels
from classifier.pcap.kernels import reader_kernels
from classifier.scale.kernels import scale_kernels

COMPILED = [
    "classifier.acl._lookup",
    "classifier.pcap._pcap",
    "classifier.engine._engine",
    "classifier.engine._conntrack",
    "classifier.scale._scale",
]


def stub_of(module: str) -> ast.Module:
    twin = importlib.import_module(module + "_py")
    assert twin.__file__ is not None
    path = Path(twin.__file__).with_name(module.rsplit(".", 1)[-1] + ".pyi")
    return ast.parse(path.read_text())


def stub_signatures(tree: ast.Module) -> dict[str, list[str] | None]:
    """Top-level names of a stub: functions with their parameter names, classes and their
    methods ("Class.method"), and constants (None: no signature)."""
    found: dict[str, list[str] | None] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef):
            found[node.name] = None
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not any(
                    isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list
                ):
                    found[f"{node.name}.{item.name}"] = [a.arg for a in item.args.args]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = None
    return found


@pytest.mark.parametrize("module", COMPILED)
def test_twin_matches_the_stub(module: str) -> None:
    twin = importlib.import_module(module + "_py")
    for name, params in stub_signatures(stub_of(module)).items():
        obj: object = twin
        for part in name.split("."):
            assert hasattr(obj, part), f"{twin.__name__} lacks {name}"
            obj = getattr(obj, part)
        if params is not None:
            assert callable(obj)
            assert list(inspect.signature(obj).parameters) == params, name


@pytest.mark.parametrize("module", COMPILED)
def test_compiled_module_has_the_stub_names(module: str) -> None:
    compiled = pytest.importorskip(module)
    for name in stub_signatures(stub_of(module)):
        obj: object = compiled
        for part in name.split("."):
            assert hasattr(obj, part), f"{compiled.__name__} lacks {name}"
            obj = getattr(obj, part)


@pytest.mark.parametrize(
    "twin",
    [lookup_kernels, reader_kernels, engine_kernels, conntrack_kernels, scale_kernels],
    ids=repr,
)
def test_dispatchers_follow_the_switch(twin: Twin, twin_mode: str) -> None:
    chosen = twin.module().__name__
    assert chosen.endswith("_py") == (twin_mode == "python")
    assert chosen.startswith(twin.name)
