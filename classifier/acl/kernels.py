"""The lookup kernel of the first-match core: compiled `_lookup`, or its twin `_lookup_py`.

See `classifier._twins`: the switch is read at each call, and mypy checks the calls against
`_lookup.pyi` (tests/test_twins.py checks the twin against the same stub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._twins import Twin

if TYPE_CHECKING:
    from classifier.acl import _lookup as lookup_kernels
else:
    lookup_kernels = Twin("classifier.acl._lookup")

__all__ = ["lookup_kernels"]
