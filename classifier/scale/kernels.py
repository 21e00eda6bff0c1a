"""The scale-out's kernel: compiled `_scale`, or its pure twin `_scale_py` (same names).

See `classifier._twins`: the switch is read at each call, and mypy checks the calls against
`_scale.pyi` (tests/test_twins.py checks the twin against the same stub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._twins import Twin

if TYPE_CHECKING:
    from classifier.scale import _scale as scale_kernels
else:
    scale_kernels = Twin("classifier.scale._scale")

__all__ = ["scale_kernels"]
