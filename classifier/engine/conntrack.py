"""Connection tracking over a stream of packet batches (spec section 4).

The engine classifies each `PacketBatch` statelessly into flat per-packet arrays; this module
then turns those stateless answers into stateful ones, batch after batch, in capture order:

    tracker = ConnectionTracker()
    for batch in batches:
        tracker.join_fragments(batch)        # before classification: lend ports to fragments
        ... engine fills verdict, reason, rule, side_*, new_side_* for the batch ...
        tracker.apply(batch, verdict, reason, rule, side_instance, side_direction,
                      new_side_instance, new_side_direction, created, midstream)

Both passes take `times=`, the packets' effective times (int64 ns), instead of reading
`batch.ts_ns`: a tracker that sees only some packets of a capture (one group of keys of the
scale-out, `classifier.scale`) is given the capture's clock, the running maximum over every
record, which its own packets alone do not tell. A tracker pickles (its tables and clocks), so
it can move between processes.

`apply` rewrites, in place, the packets that state allows (reason established / related, rule
-1, the section-6 side) and marks in `created` the packets that created a connection and in
`midstream` those TCP creations whose first packet was not a bare SYN. The creating packet's
`rule` stays in the rule column, so "connections created per rule" is
`np.bincount(rule[created == 1])`.

The work happens in `classifier.engine._conntrack` (compiled) or its twin `_conntrack_py`,
chosen when a tracker is built (`classifier.engine.kernels`). The codes are `classifier.codes`.
This facade checks array types and lengths (the core never raises); a wrong array is a
programming error, so it raises TypeError / ValueError, not a ClassifierError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from classifier.engine.kernels import conntrack_kernels
from classifier.limits import DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS, MAX_FRAGMENTS
from classifier.packets import COLUMNS, PacketBatch

# the arrays `apply` takes, with their dtypes, in argument order
APPLY_ARRAYS: dict[str, Any] = {
    "verdict": np.uint8,
    "reason": np.uint8,
    "rule": np.int32,
    "side_instance": np.int32,
    "side_direction": np.uint8,
    "new_side_instance": np.int32,
    "new_side_direction": np.uint8,
    "created": np.int8,
    "midstream": np.int8,
}

# the batch columns join_fragments writes (in the rows of non-first fragments only)
JOIN_WRITES = (
    "l4", "sport", "dport", "icmp_type", "icmp_code", "icmp_id", "tcp_flags", "protocol",
    "inner_protocol", "inner_src", "inner_dst", "inner_sport", "inner_dport",
    "inner_icmp_type", "inner_icmp_id",
)  # fmt: skip


def _check_times(times: np.ndarray | None, n: int) -> None:
    if times is None:
        return
    if not isinstance(times, np.ndarray) or times.dtype != np.int64:
        raise TypeError("times must be a numpy int64 array")
    if times.shape != (n,) or not times.flags.c_contiguous:
        raise ValueError(f"times must be C-contiguous of shape ({n},), not {times.shape}")


def _check_batch(batch: PacketBatch, writes: bool = False) -> None:
    n = len(batch)
    for name, (dtype, shape) in COLUMNS.items():
        column = getattr(batch, name)
        if not isinstance(column, np.ndarray) or column.dtype != dtype:
            raise TypeError(f"batch column {name!r} must be a numpy {np.dtype(dtype)} array")
        if column.shape != (n, *shape):
            raise ValueError(f"batch column {name!r} has shape {column.shape}, not {(n, *shape)}")
        if not column.flags.c_contiguous:
            raise ValueError(f"batch column {name!r} must be C-contiguous")
    for name in JOIN_WRITES if writes else ():
        if not getattr(batch, name).flags.writeable:
            raise ValueError(f"batch column {name!r} must be writeable")


class ConnectionTracker:
    """State carried from batch to batch: live connections and recent first fragments.

    `capacity` is only the initial size hint of the tables; they grow as needed, up to the
    bounds: `max_connections` connections tracked at once (robustness contract, section 4:
    when an allowed packet would create one more, the alive connection whose last packet is
    the oldest is evicted) and `max_fragments` first fragments remembered at once (a first
    fragment beyond it is not remembered: its later fragments are judged without ports).
    """

    def __init__(
        self,
        capacity: int = 1024,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_fragments: int = MAX_FRAGMENTS,
        record_flows: bool = False,
    ):
        """`record_flows`: count each connection's packets and bytes (flows contract,
        section 3) and keep its record when it leaves the table (`take_records`)."""
        if capacity < 1:
            raise ValueError("capacity must be positive")
        if not 1 <= max_connections <= MAX_CONNECTIONS:
            raise ValueError(f"max_connections must be 1..{MAX_CONNECTIONS}")
        if max_fragments < 1:
            raise ValueError("max_fragments must be positive")
        self._core = conntrack_kernels.Tracker(
            int(capacity), int(max_connections), int(max_fragments), bool(record_flows)
        )

    @property
    def core(self) -> Any:
        """The `Tracker` of the kernel module chosen when this tracker was built (the fused
        pass works on it directly; the arrays it is given are the pass's to check)."""
        return self._core

    @property
    def implementation(self) -> str:
        """`_conntrack` (compiled) or `_conntrack_py` (the twin)."""
        return type(self._core).__module__.rsplit(".", 1)[-1]

    def join_fragments(self, batch: PacketBatch, times: np.ndarray | None = None) -> None:
        """Give non-first fragments their first fragment's upper-layer protocol and ports /
        ICMP fields (an error's quoted header included), in place."""
        _check_batch(batch, writes=True)
        _check_times(times, len(batch))
        self._core.join_fragments(batch, times)

    def apply(
        self,
        batch: PacketBatch,
        verdict: np.ndarray,
        reason: np.ndarray,
        rule: np.ndarray,
        side_instance: np.ndarray,
        side_direction: np.ndarray,
        new_side_instance: np.ndarray,
        new_side_direction: np.ndarray,
        created: np.ndarray,
        midstream: np.ndarray,
        times: np.ndarray | None = None,
    ) -> None:
        """Turn the batch's stateless answers into stateful ones, in place, in capture order."""
        _check_batch(batch)
        _check_times(times, len(batch))
        arrays = (
            verdict,
            reason,
            rule,
            side_instance,
            side_direction,
            new_side_instance,
            new_side_direction,
            created,
            midstream,
        )
        for (name, dtype), array in zip(APPLY_ARRAYS.items(), arrays, strict=True):
            if not isinstance(array, np.ndarray) or array.dtype != dtype:
                raise TypeError(f"{name} must be a numpy {np.dtype(dtype)} array")
            if array.shape != (len(batch),):
                raise ValueError(f"{name} has shape {array.shape}, not ({len(batch)},)")
            if not array.flags.c_contiguous or not array.flags.writeable:
                raise ValueError(f"{name} must be C-contiguous and writeable")
        self._core.apply(batch, *arrays, times=times)

    _PICKLED = (
        "clock_ns", "fragment_clock_ns", "connections_created", "midstream_created",
        "flow_count", "frag_count", "limit", "evicted", "tracked", "next_seq", "max_fragments",
        "fragments_dropped", "file_number",
    )  # fmt: skip

    def __getstate__(self) -> dict[str, Any]:
        """The tables and counters (the scale-out moves trackers between processes). The
        eviction heaps are not sent: they are rebuilt from the table on arrival. Connection
        records stay in their process: a tracker that keeps them is not sent."""
        core = self._core
        if core.record_flows:
            raise TypeError("a tracker that keeps connection records cannot be pickled")
        state = {name: getattr(core, name) for name in self._PICKLED}
        state["flows"], state["fragments"] = core.flows, core.fragments
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """The same tables on the twin this process selects (their layouts are the same),
        then a rehash at the tracker's clock, which drops what has expired (as any rehash
        may: expired connections are forgotten uncounted) and rebuilds the eviction heaps."""
        core = self._core = conntrack_kernels.Tracker(
            limit=state["limit"], max_fragments=state["max_fragments"]
        )
        core._alloc_flows(len(state["flows"]))
        core._alloc_fragments(len(state["fragments"]))
        core.flows[...] = state["flows"]
        core.fragments[...] = state["fragments"]
        for name in self._PICKLED:
            setattr(core, name, state[name])
        core.rehash(0, state["clock_ns"])

    @property
    def connections_created(self) -> int:
        return int(self._core.connections_created)

    @property
    def midstream_created(self) -> int:
        return int(self._core.midstream_created)

    @property
    def file_number(self) -> int:
        """The file the next batches come from (the `file` of the records they create)."""
        return int(self._core.file_number)

    @file_number.setter
    def file_number(self, number: int) -> None:
        self._core.file_number = int(number)

    def take_records(self) -> np.ndarray:
        """The records (`layouts.RECORD_DTYPE`) of the connections that left the table since
        the last call: evicted, dropped or replaced once expired. Empty without flow
        records."""
        return np.asarray(self._core.take_records())

    def finish_records(self) -> np.ndarray:
        """At the end of the run: the records of the connections still in the table, with
        those not yet taken (the table is left as it is: call it once)."""
        self._core.finish_records()
        return self.take_records()

    @property
    def max_connections(self) -> int:
        """The connections tracked at once, at most."""
        return int(self._core.limit)

    @property
    def evicted(self) -> int:
        """Alive connections forgotten because `max_connections` were tracked."""
        return int(self._core.evicted)

    @property
    def fragments_dropped(self) -> int:
        """First fragments not remembered because `max_fragments` were."""
        return int(self._core.fragments_dropped)

    @property
    def clock_ns(self) -> int:
        """The latest timestamp seen by `apply` (the clock never goes back)."""
        return int(self._core.clock_ns)

    @property
    def capacity(self) -> int:
        """Slots of the flow table (a power of two; at most half of them occupied)."""
        return int(self._core.capacity)

    def live_connections(self) -> int:
        """Connections alive at the clock."""
        return int(self._core.live_connections())
