"""What the workers run: a block classified whole (stateless), or one state lane's share of
a block (stateful), and the lanes' shares combined. Pure functions of their inputs.

Every function here is a Dask task body (`classifier.scale.runner` submits them), and none
needs Dask: they take and return plain objects (numpy arrays, batches, trackers), so they are
deterministic and a task run twice (after a lost worker) returns the same thing. Inputs are
never changed in place, with one exception kept safe on purpose: a lane's tracker (`Lane`)
is advanced by the next step of its chain, and `Lane.steps` checks that each step sees it
exactly as the previous step left it (else `LaneError`, never a silently different result).

A block is read in pieces of one process's batch size, so that the reader, the fused pass
and the statistics work on batches that stay in the caches, as in one process.

Lanes (`lanes_of`, on `classifier.scale._scale.row_lanes`): every row of a batch belongs to
one lane, by a symmetric hash of the two addresses of its connection-state key (an ICMP
error's quoted header's, else its own), so a connection, both directions, and every error
quoting it fall in one lane (semantics section 4; scale.md section 3). A lane's step reads
the whole block, joins its fragments (every lane joins every fragment: its fragment table
is one process's), then runs the fused pass on the lane's rows only, with the clock advanced
by every row: its tracker sees exactly what one process's tracker sees of those
connections, at the same times.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classifier.engine.columns import BatchEngine, BatchResult
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.pipeline import classify_fused
from classifier.engine.stats import SummaryBuilder
from classifier.errors import PcapError
from classifier.limits import DEFAULT_MAX_CONNECTIONS
from classifier.packets import PacketBatch
from classifier.pcap import open_capture
from classifier.scale.kernels import scale_kernels

# a BatchResult's per-packet columns after its batch: what a lane's step hands on per row
RESULT_COLUMNS = ("verdict", "reason", "rule", "instance", "direction", "created", "midstream",
                  "egress_rule", "ingress_rule")  # fmt: skip


class LaneError(RuntimeError):
    """A chain's tracker was not in the state its next step expects (an internal error)."""


@dataclass(frozen=True)
class Block:
    """One task's share of a capture: whole records from a reader state to a byte offset."""

    number: int  # position among every block of the run, in capture order
    file_number: int  # position of the capture among those given
    path: str  # the path as given (the `file` column)
    location: str  # the absolute path the workers open
    state: tuple[Any, ...]  # the reader's state at the first record (`Capture.resume`)
    start: int  # byte offset of the first record
    end: int  # byte offset where the block ends (a record boundary)
    first: int  # index of the first record in its file
    records: int
    file_size: int  # bytes of the whole capture (for progress)


@dataclass
class Lane:
    """The state of one lane's chain: its tracker, the statistics of its rows so far (sent
    once, at the end: `lane_summary`), and how many steps it has applied."""

    tracker: ConnectionTracker
    stats: SummaryBuilder
    steps: int = 0


@dataclass
class LaneStep:
    """What one step of a chain leaves: the lane (for the next step) and its own output."""

    lane: Lane
    out: LaneOut

    def __sizeof__(self) -> int:  # the tracker's tables: moving a chain is expensive
        core = self.lane.tracker._core
        return int(core.flows.nbytes + core.fragments.nbytes) + _size(self.lane.stats)


@dataclass
class LaneOut:
    """One lane's share of a block, when results are asked for: its rows' columns (and lane
    0's the pieces, and the block's facts in every case)."""

    rows: list[np.ndarray] = field(default_factory=list)  # per piece: the lane's rows (int32)
    columns: list[dict[str, np.ndarray]] = field(default_factory=list)  # per piece, at rows
    pieces: list[PacketBatch] = field(default_factory=list)  # lane 0: the pieces, joined
    slow_path: int = 0  # lane 0: records decoded through scapy
    first_ns: int | None = None  # lane 0: the timestamps of the block's first, last records
    last_ns: int | None = None

    def __sizeof__(self) -> int:
        size = 4096 + sum(rows.nbytes for rows in self.rows)
        size += sum(a.nbytes for columns in self.columns for a in columns.values())
        size += sum(a.nbytes for piece in self.pieces for a in piece.columns().values())
        return int(size)


def lanes_of(batch: PacketBatch, lanes: int) -> np.ndarray:
    """Each row's lane (uint16), by the symmetric hash of its state key's two addresses
    (`_scale.row_lanes`)."""
    lane = np.empty(len(batch), np.uint16)
    scale_kernels.row_lanes(
        batch.ip_version, batch.protocol, batch.l4, batch.icmp_type, batch.src, batch.dst,
        batch.inner_src, batch.inner_dst, lanes, lane,
    )  # fmt: skip
    return lane


@contextlib.contextmanager
def _reading(block: Block, batch_size: int) -> Iterator[tuple[Iterator[PacketBatch], list[int]]]:
    """The block's records as they are read, in pieces of at most `batch_size` (one at a
    time, as one process reads them: memory reused, caches warm); once they are all read,
    the list holds how many scapy decoded. A capture that changed since it was cut, or that a
    worker cannot read, raises PcapError naming the path as given."""
    slow_path: list[int] = []
    try:
        with open_capture(block.location) as capture:
            capture.resume(block.state)
            records = 0

            def pieces() -> Iterator[PacketBatch]:
                nonlocal records
                for piece in capture.batches(batch_size, end=block.end):
                    records += len(piece)
                    yield piece

            yield pieces(), slow_path
            if records != block.records:
                raise PcapError(
                    f"{block.path}: the file changed while it was read: {records} records "
                    f"from byte offset {block.start}, not {block.records}"
                )
            slow_path.append(int(capture.slow_path))
    except PcapError as error:
        raise PcapError(str(error).replace(block.location, block.path, 1)) from None


class _Span:
    """The timestamps of the first and last records of the pieces it is shown."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None

    def see(self, piece: PacketBatch) -> None:
        if len(piece):
            self.first = int(piece.ts_ns[0]) if self.first is None else self.first
            self.last = int(piece.ts_ns[-1])


def _sendable(stats: SummaryBuilder) -> SummaryBuilder:
    stats = copy.copy(stats)  # a lane's own builder stays whole (a task may run again)
    stats.rules, stats.instance_ids = [], []  # the driver's builder has them: need not travel
    return stats


def _size(stats: SummaryBuilder | None) -> int:
    if stats is None:
        return 4096
    return int(stats.timeline.counts.nbytes + 64 * len(stats.denied.keys) + 4096)


# --- stateless: a block at a time -----------------------------------------------------------


@dataclass
class Finished:
    """A finished block: its statistics and, when asked for, its per-packet results."""

    stats: SummaryBuilder | None  # stateful: None (the lanes send theirs at the end)
    results: list[BatchResult]
    slow_path: int
    first_ns: int | None  # the timestamps of the block's first and last records
    last_ns: int | None

    def __sizeof__(self) -> int:
        size = _size(self.stats)
        for result in self.results:
            size += sum(a.nbytes for a in result.batch.columns().values())
        return int(size)


def classify_block(engine: BatchEngine, block: Block, batch_size: int, results: bool) -> Finished:
    """A block classified without connection state (every record depends on itself alone):
    the fused pass over its pieces, their statistics, and when asked for their results."""
    stats = SummaryBuilder(engine.rules, engine.instance_ids, False)
    done, span = [], _Span()
    with _reading(block, batch_size) as (pieces, slow_path):
        for piece in pieces:
            span.see(piece)
            result = classify_fused(engine, None, stats, piece, block.path, block.file_number)
            if results:
                done.append(result)
    return Finished(_sendable(stats), done, slow_path[0], span.first, span.last)


# --- stateful: a lane's share of a block, the shares combined -------------------------------


def lane_step(
    engine: BatchEngine,
    block: Block,
    previous: LaneStep | None,
    lane: int,
    lanes: int,
    step: int,
    limit: int = DEFAULT_MAX_CONNECTIONS,
    batch_size: int = 65536,
    results: bool = False,
) -> LaneStep:
    """Lane `lane` of `lanes` applied to one block: read it, join its fragments, classify and
    count the lane's rows (the fused pass at the clock of every row) into the lane's
    statistics. Lane 0 also hands on the block's facts and, when results are wanted, the
    pieces themselves."""
    state = _lane(engine, previous, step, limit)
    out, span = LaneOut(), _Span()
    with _reading(block, batch_size) as (pieces, slow_path):
        for piece in pieces:
            span.see(piece)
            state.tracker.join_fragments(piece)
            lane_of = lanes_of(piece, lanes)
            result = classify_fused(
                engine, state.tracker.core, state.stats, piece, block.path, block.file_number,
                lane_of, lane,
            )  # fmt: skip
            if results:
                rows = np.flatnonzero(lane_of == lane).astype(np.int32)
                out.rows.append(rows)
                out.columns.append({name: getattr(result, name)[rows] for name in RESULT_COLUMNS})
                if lane == 0:
                    out.pieces.append(piece)
    if lane == 0:
        out.slow_path = slow_path[0]
        out.first_ns, out.last_ns = span.first, span.last
    state.steps += 1
    return LaneStep(state, out)


def _lane(engine: BatchEngine, previous: LaneStep | None, step: int, limit: int) -> Lane:
    """The lane's tracker and statistics: new ones (the tracker holding at most `limit`
    connections) at the chain's first step, else those its previous step advanced."""
    if previous is None:
        tracker = ConnectionTracker(max_connections=limit)
        lane = Lane(tracker, SummaryBuilder(engine.rules, engine.instance_ids, True))
    else:
        lane = previous.lane
    if lane.steps != step:
        raise LaneError(f"a chain's step {step} found its tracker after {lane.steps} steps")
    return lane


def output(done: LaneStep) -> LaneOut:
    return done.out


def lane_summary(done: LaneStep, lane: int) -> tuple[SummaryBuilder, int]:
    """A lane's statistics after its last step, and the connections its tracker forgot to
    respect its limit. Every lane framed every piece: lane 0 alone counts the packets."""
    stats = _sendable(done.lane.stats)
    if lane:
        stats.packets = 0
    return stats, done.lane.tracker.evicted


def combine(block: Block, outs: list[LaneOut], results: bool) -> Finished:
    """A block's lanes' shares as one finished block (its statistics are the lanes'): when
    asked for, each piece's columns put together from its lanes' rows (`outs`: every lane's
    share then, else lane 0's alone, which carries the block's facts)."""
    first = outs[0]
    done: list[BatchResult] = []
    if results:
        for p, piece in enumerate(first.pieces):
            columns = {}
            for name in RESULT_COLUMNS:
                column = np.empty(len(piece), first.columns[p][name].dtype)
                for out in outs:
                    column[out.rows[p]] = out.columns[p][name]
                columns[name] = column
            done.append(BatchResult(block.path, block.file_number, piece, **columns))
    return Finished(None, done, first.slow_path, first.first_ns, first.last_ns)


def version() -> str:
    """The package's version on this worker."""
    from classifier import __version__

    return __version__
