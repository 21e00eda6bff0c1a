"""Choose between a compiled module and its pure-Python twin.

Each compiled module `classifier.<room>._x` has a twin `classifier.<room>._x_py` with the same
names. `CLASSIFIER_NO_EXTENSIONS=1` selects the twins everywhere; otherwise the compiled module
is used, and a missing build falls back to the twin (a source checkout without a compiler still
works, slowly).

Each room has a dispatcher of a few lines that names its kernels once:

    if TYPE_CHECKING:
        from classifier.acl import _lookup as lookup_kernels   # mypy checks calls on the .pyi
    else:
        lookup_kernels = Twin("classifier.acl._lookup")

A `Twin` resolves every attribute on the module the switch selects *now*, so one process can
run the same objects on both twins (the tests do: the `twin_mode` fixture flips the switch),
and nothing that holds a kernel needs to pickle a module. Kernels are called once per batch,
never per packet, so the lookup costs nothing measurable.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any


def extensions_enabled() -> bool:
    return os.environ.get("CLASSIFIER_NO_EXTENSIONS", "") not in ("1", "true", "yes")


class Twin:
    """The compiled module `name`, or its twin `name + "_py"`, chosen at each attribute access."""

    __slots__ = ("name", "_missing")

    def __init__(self, name: str):
        self.name = name
        self._missing = False  # the compiled module failed to import once: do not retry

    def module(self) -> ModuleType:
        if extensions_enabled() and not self._missing:
            try:
                return importlib.import_module(self.name)
            except ImportError:
                self._missing = True
        return importlib.import_module(self.name + "_py")

    def both(self) -> tuple[ModuleType, ModuleType]:
        """(compiled, twin), for the tests that compare them directly."""
        return importlib.import_module(self.name), importlib.import_module(self.name + "_py")

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.module(), attribute)

    def __repr__(self) -> str:
        return f"Twin({self.name!r})"
