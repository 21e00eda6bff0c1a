"""Choose between a compiled module and its pure-Python twin.

Each compiled module `classifier._x` has a twin `classifier._x_py` with the same names.
`CLASSIFIER_NO_EXTENSIONS=1` selects the twins everywhere; otherwise the compiled module
is used, and a missing build falls back to the twin (a source checkout without a compiler
still works, slowly).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def extensions_enabled() -> bool:
    return os.environ.get("CLASSIFIER_NO_EXTENSIONS", "") not in ("1", "true", "yes")


def load(name: str) -> ModuleType:
    """Return `classifier.<name>` (compiled) or `classifier.<name>_py` (its twin)."""
    if extensions_enabled():
        try:
            return importlib.import_module(f"classifier.{name}")
        except ImportError:
            pass
    return importlib.import_module(f"classifier.{name}_py")


def load_both(name: str) -> tuple[ModuleType, ModuleType]:
    """(compiled, twin), for the tests that compare them directly."""
    return importlib.import_module(f"classifier.{name}"), importlib.import_module(f"classifier.{name}_py")
