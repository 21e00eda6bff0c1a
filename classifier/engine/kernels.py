"""The engine's kernels: compiled `_engine` and `_conntrack`, or their twins `_engine_py` and
`_conntrack_py` (same names).

See `classifier._twins`: the switch is read at each call, and mypy checks the calls against
the `.pyi` stubs (tests/test_twins.py checks each twin against the same stub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._twins import Twin

if TYPE_CHECKING:
    from classifier.engine import _conntrack as conntrack_kernels
    from classifier.engine import _engine as engine_kernels
else:
    engine_kernels = Twin("classifier.engine._engine")
    conntrack_kernels = Twin("classifier.engine._conntrack")

__all__ = ["conntrack_kernels", "engine_kernels"]
