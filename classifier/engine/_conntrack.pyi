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
    limit: int  # connections tracked at once, at most
    evicted: int  # alive connections forgotten to respect the limit
    tracked: int  # connections not forgotten (alive, or expired and not dropped)
    next_seq: int  # the creation number of the next connection
    max_fragments: int  # first fragments remembered at once, at most
    fragments_dropped: int  # first fragments not remembered (the table was full)
    record_flows: bool  # keep a record per connection (flow records)
    file_number: int  # the file of the batches given now (flow records)
    @property
    def flows(self) -> np.ndarray: ...  # FLOW_DTYPE records
    @property
    def flow_tags(self) -> np.ndarray: ...  # uint8 per slot: 0 unused, else 0x80 | hash >> 57
    @property
    def fragments(self) -> np.ndarray: ...  # FRAGMENT_DTYPE records
    @property
    def flowstats(self) -> np.ndarray | None: ...  # FLOWSTAT_DTYPE beside flows
    def __init__(
        self,
        capacity: int = 64,
        limit: int = 1_000_000,
        max_fragments: int = 131_072,
        record_flows: bool = False,
    ) -> None: ...
    def _alloc_flows(self, capacity: int) -> None: ...  # empty tables (unpickling refills)
    def _alloc_fragments(self, capacity: int) -> None: ...
    def _flow_reserve(self, more: int, t: int) -> None: ...  # room, rehashing when needed
    def rehash(self, more: int, t: int) -> None: ...  # rebuilt at t: expired dropped, heaps
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
    def take_records(self) -> np.ndarray: ...  # RECORD_DTYPE
    def finish_records(self) -> None: ...
    @property
    def capacity(self) -> int: ...
