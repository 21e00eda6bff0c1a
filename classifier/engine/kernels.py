"""The engine's kernels: compiled `_engine`, `_conntrack` and `_fused`, or their twins
`_engine_py`, `_conntrack_py` and `_fused_py` (same names).

See `classifier._twins`: the switch is read at each call, and mypy checks the calls against
the `.pyi` stubs (tests/test_twins.py checks each twin against the same stub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._twins import Twin

if TYPE_CHECKING:
    from classifier.engine import _conntrack as conntrack_kernels
    from classifier.engine import _engine as engine_kernels
    from classifier.engine import _fused as fused_kernels
else:
    engine_kernels = Twin("classifier.engine._engine")
    conntrack_kernels = Twin("classifier.engine._conntrack")
    fused_kernels = Twin("classifier.engine._fused")

__all__ = ["conntrack_kernels", "engine_kernels", "fused_kernels"]
