"""The reader core: compiled `_pcap`, or its pure twin `_pcap_py` (same names).

See `classifier._twins`: the switch is read at each call, and mypy checks the calls against
`_pcap.pyi` (tests/test_twins.py checks the twin against the same stub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._twins import Twin

if TYPE_CHECKING:
    from classifier.pcap import _pcap as reader_kernels
else:
    reader_kernels = Twin("classifier.pcap._pcap")

__all__ = ["reader_kernels"]
