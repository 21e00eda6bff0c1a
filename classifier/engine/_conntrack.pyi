"""Stub of the compiled classifier.engine._conntrack (twin: classifier.engine._conntrack_py).

Use it through classifier.engine.conntrack.ConnectionTracker, which validates the arrays.
"""

from typing import Any

import numpy as np

FLOW_DTYPE: np.dtype  # one 64-byte flow-table slot (see the module's design note)
FRAGMENT_DTYPE: np.dtype  # one 64-byte fragment-table slot

class Tracker:
    clock_ns: int  # latest timestamp seen by apply (the clock never goes back)
    fragment_clock_ns: int  # ... by join_fragments
    connections_created: int
    midstream_created: int
    flow_count: int  # occupied flow slots, expired ones included
    frag_count: int
    @property
    def flows(self) -> np.ndarray: ...  # FLOW_DTYPE records
    @property
    def fragments(self) -> np.ndarray: ...  # FRAGMENT_DTYPE records
    def __init__(self, capacity: int = 64) -> None: ...
    def _alloc_flows(self, capacity: int) -> None: ...  # empty tables (unpickling refills)
    def _alloc_fragments(self, capacity: int) -> None: ...
    def join_fragments(self, batch: Any, times: np.ndarray | None = None) -> None: ...
    def apply(
        self,
        batch: Any,
        verdict: np.ndarray,
        reason: np.ndarray,
        rule: np.ndarray,
        side_instance: np.ndarray,
        side_direction: np.ndarray,
        new_side_instance: np.ndarray,
        new_side_direction: np.ndarray,
        created: np.ndarray,
        midstream: np.ndarray,
        times: np.ndarray | None = None,  # effective times instead of batch.ts_ns
    ) -> None: ...
    def live_connections(self) -> int: ...
    @property
    def capacity(self) -> int: ...
