"""What the workers run: decode and judge a block, join fragments and apply state per group of
keys, finish a block (state written back, its statistics). Pure functions of their inputs.

Every function here is a Dask task body (`classifier.scale.runner` submits them), and none
needs Dask: they take and return plain objects (numpy arrays, batches, trackers), so they are
deterministic and a task run twice (after a lost worker) returns the same thing. Inputs are
never changed in place, with one exception kept safe on purpose: a lane's tracker (`Lane`)
is advanced by the next step of its chain, and `Lane.steps` checks that each step sees it
exactly as the previous step left it (else `LaneError`, never a silently different result).

A decoded block is kept as pieces of one process's batch size (`Decoded.pieces`), each with
its stateless verdicts and its rows per group: the reader, the engine and the statistics then
work on batches that stay in the caches, as in one process, and memory is reused from block
to block.

Groups (`classifier.scale._scale`): a row the rules judged (verdict allow or deny) takes part
in connection state, in the group of the two addresses its state key is made of (an ICMP
error's quoted header's, else its own), so a connection, both directions, and every error
quoting it fall in one group (semantics section 4; scale.md section 3). Fragments are joined
per group of their outer addresses (a datagram has one source and destination) in a chain of
their own first: the first fragment of an ICMP error carries the quoted header and lands, for
state, in the quoted connection's group, while its later fragments are known as errors only
once joined (`rejoin`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classifier.codes import (
    FRAGMENT_LATER,
    L4_INNER,
    REASON_ESTABLISHED,
    STATUS_L4_TRUNCATED,
    STATUS_OK,
    VERDICT_ALLOW,
)
from classifier.engine.columns import BatchEngine, BatchResult, StatelessVerdicts
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.stats import SummaryBuilder
from classifier.errors import PcapError
from classifier.limits import DEFAULT_MAX_CONNECTIONS
from classifier.packets import COLUMNS, PacketBatch
from classifier.pcap import DEFAULT_BATCH_SIZE, open_capture
from classifier.scale.kernels import scale_kernels

# the columns connection tracking reads for `apply` (and that a state part carries as is)
STATE_COLUMNS = ("protocol", "l4", "sport", "dport", "icmp_type", "icmp_id", "tcp_flags")
INNER_COLUMNS = ("inner_protocol", "inner_src", "inner_dst", "inner_sport", "inner_dport",
                 "inner_icmp_type", "inner_icmp_id")  # fmt: skip
# the columns fragment joining writes into later fragments
JOINED_COLUMNS = ("l4", "sport", "dport", "icmp_type", "icmp_code", "icmp_id", "tcp_flags",
                  "protocol", *INNER_COLUMNS)  # fmt: skip
VERDICT_COLUMNS = ("verdict", "reason", "rule", "instance", "direction", "new_instance",
                   "new_direction", "egress_rule", "ingress_rule")  # fmt: skip
# what connection state may change (finish copies these, per piece)
FINAL_COLUMNS = ("verdict", "reason", "rule", "instance", "direction", "egress_rule",
                 "ingress_rule")  # fmt: skip
V4_MAPPED_WORD = np.array([0, 0, 0xFF, 0xFF], np.uint8).view(np.uint32)[0]  # bytes 8..11
# what a state step hands back per row, packed in one byte
OUT_REASON_MASK, OUT_CREATED, OUT_MIDSTREAM = 0x07, 0x08, 0x10


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
class Decoded:
    """A block decoded and judged by the rules, as it stays on its worker until finished."""

    block: Block
    pieces: list[PacketBatch]  # consecutive batches of at most one process's batch size
    verdicts: list[StatelessVerdicts]  # per piece
    clocks: list[np.ndarray]  # per piece: int64 running maximum of the block's timestamps
    slow_path: int  # records decoded through scapy
    groups: int
    state: list[list[np.ndarray]] = field(default_factory=list)  # [piece][group] rows (int32)
    join: list[list[np.ndarray]] = field(default_factory=list)  # [piece][group] fragment rows
    later: list[np.ndarray] = field(default_factory=list)  # [piece] later fragments' rows

    def __sizeof__(self) -> int:  # what Dask counts (and weighs before moving it)
        size = 4096
        for piece, verdicts, clock in zip(self.pieces, self.verdicts, self.clocks, strict=True):
            size += sum(a.nbytes for a in piece.columns().values()) + clock.nbytes
            size += sum(getattr(verdicts, name).nbytes for name in VERDICT_COLUMNS)
        return size

    def meta(self) -> dict[str, Any]:
        """The small facts the driver needs to plan the block's next steps."""
        return {
            "records": sum(len(piece) for piece in self.pieces),
            "max_ts": int(self.clocks[-1][-1]) if self.pieces else None,
            "slow_path": self.slow_path,
            "state": _counts(self.state, self.groups),
            "join": _counts(self.join, self.groups),
            "later": sum(len(rows) for rows in self.later),
        }


def _counts(rows: list[list[np.ndarray]], groups: int) -> list[int]:
    """Rows per group over every piece ([] when the rows are not sorted into groups)."""
    if not rows:
        return []
    return [sum(len(per_piece[g]) for per_piece in rows) for g in range(groups)]


@dataclass
class Lane:
    """The state of one group's chain: its tracker and how many steps it has applied."""

    tracker: ConnectionTracker
    steps: int = 0


@dataclass
class LaneStep:
    """What one step of a chain leaves: the lane (for the next step) and its own output."""

    lane: Lane
    out: Any  # the step's per-row output (a state step: uint8; a join step: columns)

    def __sizeof__(self) -> int:  # the tracker's tables: moving a chain is expensive
        core = self.lane.tracker._core
        return int(core.flows.nbytes + core.fragments.nbytes) + 1024


def _groups_of(
    batch: PacketBatch, verdict: np.ndarray, groups: int, l4: np.ndarray | None = None
) -> list[np.ndarray]:
    """The rows of `verdict` allow/deny, by state group (`_scale.state_groups`), each in row
    order. With `l4` zeros: by the pair of outer addresses (fragment groups)."""
    n = len(batch)
    group, order = np.empty(n, np.uint16), np.empty(n, np.int32)
    bounds = np.empty(groups + 1, np.int64)
    scale_kernels.state_groups(
        verdict, batch.ip_version, batch.protocol, batch.l4 if l4 is None else l4,
        batch.icmp_type, batch.src, batch.dst, batch.inner_src, batch.inner_dst, groups, group,
        order, bounds,
    )  # fmt: skip
    return [order[bounds[g] : bounds[g + 1]] for g in range(groups)]


def _gather(column: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The rows `rows` of each piece's `column` (pairs (column, rows)), concatenated."""
    n = sum(len(rows) for _, rows in parts)
    out = np.empty((n, *column.shape[1:]), column.dtype)
    at = 0
    for piece_column, rows in parts:
        np.take(piece_column, rows, axis=0, out=out[at : at + len(rows)])  # 4x column[rows]
        at += len(rows)
    return out


def take(batch: PacketBatch, rows: np.ndarray, names: tuple[str, ...] = tuple(COLUMNS)) -> Any:
    """The given rows of the named columns: a PacketBatch for every column, else a dict."""
    columns = {name: np.take(getattr(batch, name), rows, axis=0) for name in names}
    return PacketBatch(**columns) if len(names) == len(COLUMNS) else columns


# --- decode --------------------------------------------------------------------------------


def decode(
    engine: BatchEngine, block: Block, stateful: bool, batch_size: int, groups: int
) -> Decoded:
    """Read the block's records, judge them by the rules, and (stateful) sort its rows into
    groups: those of connection state now, unless later fragments wait for their joining."""
    try:
        with open_capture(block.location) as capture:
            capture.resume(block.state)
            pieces = list(capture.batches(batch_size, end=block.end))
            slow_path = capture.slow_path
    except PcapError as error:
        raise PcapError(str(error).replace(block.location, block.path, 1)) from None
    records = sum(len(piece) for piece in pieces)
    if records != block.records:
        raise PcapError(
            f"{block.path}: the file changed while it was read: {records} records from byte "
            f"offset {block.start}, not {block.records}"
        )
    verdicts = [engine.classify(piece) for piece in pieces]
    clocks, latest = [], np.iinfo(np.int64).min
    for piece in pieces:
        clock = np.maximum.accumulate(piece.ts_ns)
        np.maximum(clock, latest, out=clock)
        latest = int(clock[-1])
        clocks.append(clock)
    decoded = Decoded(block, pieces, verdicts, clocks, slow_path, groups)
    if not stateful:
        return decoded
    for piece in pieces:
        usable = (piece.status == STATUS_OK) | (piece.status == STATUS_L4_TRUNCATED)
        fragments = np.flatnonzero(usable & (piece.fragment != 0))
        decoded.later.append(fragments[piece.fragment[fragments] == FRAGMENT_LATER])
        decoded.join.append(_join_groups(piece, fragments, groups))
    if not any(len(rows) for per_piece in decoded.join for rows in per_piece):
        decoded.join = []
    if not sum(len(rows) for rows in decoded.later):
        decoded.state = [
            _groups_of(p, v.verdict, groups) for p, v in zip(pieces, verdicts, strict=True)
        ]
    return decoded


def _join_groups(piece: PacketBatch, fragments: np.ndarray, groups: int) -> list[np.ndarray]:
    """A piece's usable fragments by the pair of their outer addresses."""
    if not len(fragments):
        return [fragments.astype(np.int32)] * groups
    rows = take(piece, fragments)
    zeros = np.zeros(len(fragments), np.uint8)  # "allow": every one grouped, none quoting
    return [fragments[g].astype(np.int32) for g in _groups_of(rows, zeros, groups, l4=zeros)]


def meta(decoded: Decoded) -> dict[str, Any]:
    return decoded.meta()


# --- fragments -----------------------------------------------------------------------------


def join_part(decoded: Decoded, group: int) -> tuple[PacketBatch, np.ndarray]:
    """The fragment rows of one join group (every column) and their block-local clock."""
    rows = [per_piece[group] for per_piece in decoded.join]
    batch = PacketBatch(
        **{
            name: _gather(getattr(decoded.pieces[0], name), [
                (getattr(piece, name), r) for piece, r in zip(decoded.pieces, rows, strict=True)
            ])
            for name in COLUMNS
        }
    )  # fmt: skip
    clock = _gather(decoded.clocks[0], list(zip(decoded.clocks, rows, strict=True)))
    return batch, clock


def join_step(
    previous: LaneStep | None,
    part: tuple[PacketBatch, np.ndarray],
    carry: int,
    step: int,
    limit: int = DEFAULT_MAX_CONNECTIONS,
) -> LaneStep:
    """Join one block's fragments of a group at the capture's clock; the output is the joined
    columns of its later fragments."""
    lane = _lane(previous, step, limit)
    batch, clock = part
    times = np.maximum(clock, carry)
    for i in range(0, len(batch), DEFAULT_BATCH_SIZE):
        at = slice(i, i + DEFAULT_BATCH_SIZE)
        lane.tracker.join_fragments(batch.slice(i, i + DEFAULT_BATCH_SIZE), times=times[at])
    later = np.flatnonzero(batch.fragment == FRAGMENT_LATER)
    lane.steps += 1
    return LaneStep(lane, take(batch, later, JOINED_COLUMNS))


def _lane(previous: LaneStep | None, step: int, limit: int) -> Lane:
    """The lane's tracker: a new one (holding at most `limit` connections) at the chain's
    first step, else the one its previous step advanced."""
    lane = Lane(ConnectionTracker(max_connections=limit)) if previous is None else previous.lane
    if lane.steps != step:
        raise LaneError(f"a chain's step {step} found its tracker after {lane.steps} steps")
    return lane


def output(done: LaneStep) -> Any:
    return done.out


def lane_evicted(done: LaneStep) -> int:
    """The connections a lane's tracker forgot to respect its limit, up to this step."""
    return done.lane.tracker.evicted


def rejoin(engine: BatchEngine, decoded: Decoded, joined: list[tuple[int, Any]]) -> Decoded:
    """The block with its later fragments joined (`joined`: per fragment group, the output of
    its join step) and judged again by the rules, then sorted into state groups. A new
    Decoded: the pieces and verdicts it changes are copies."""
    outputs = dict(joined)
    taken = {group: 0 for group in outputs}
    pieces, verdicts = list(decoded.pieces), list(decoded.verdicts)
    for p, later in enumerate(decoded.later):
        if not len(later):
            continue
        piece = PacketBatch(**pieces[p].columns())
        for name in JOINED_COLUMNS:
            setattr(piece, name, getattr(piece, name).copy())
        for group, columns in outputs.items():
            rows = decoded.join[p][group]
            rows = rows[piece.fragment[rows] == FRAGMENT_LATER]
            lo, taken[group] = taken[group], taken[group] + len(rows)
            for name in JOINED_COLUMNS:
                getattr(piece, name)[rows] = columns[name][lo : taken[group]]
        judged = StatelessVerdicts(
            **{name: getattr(verdicts[p], name).copy() for name in VERDICT_COLUMNS}
        )
        again = engine.classify(take(piece, later))
        for name in VERDICT_COLUMNS:
            getattr(judged, name)[later] = getattr(again, name)
        pieces[p], verdicts[p] = piece, judged
    fixed = Decoded(
        decoded.block, pieces, verdicts, decoded.clocks, decoded.slow_path, decoded.groups,
        join=decoded.join, later=decoded.later,
    )  # fmt: skip
    fixed.state = [
        _groups_of(p, v.verdict, fixed.groups) for p, v in zip(pieces, verdicts, strict=True)
    ]
    return fixed


# --- connection state ----------------------------------------------------------------------


def state_part(decoded: Decoded, group: int) -> dict[str, Any]:
    """What a group's tracker needs of the block's rows in it, compactly: the columns of their
    keys and flags, the stateless verdict and rule, the block-local clock as increments; IPv4
    addresses as their 4-byte words (IPv6 ones whole, apart); the quoted header only for the
    rows that have one."""
    rows = [per_piece[group] for per_piece in decoded.state]
    pieces = decoded.pieces

    def gather(name: str, columns: list[np.ndarray] | None = None) -> np.ndarray:
        columns = columns if columns is not None else [getattr(p, name) for p in pieces]
        return _gather(columns[0], list(zip(columns, rows, strict=True)))

    part: dict[str, Any] = {name: gather(name) for name in STATE_COLUMNS}
    part["verdict"] = gather("", [v.verdict for v in decoded.verdicts])
    rule = gather("", [v.rule for v in decoded.verdicts])
    part["rule"] = rule.astype(np.int16) if len(rule) and rule.max() < 2**15 else rule
    clock = gather("", decoded.clocks)
    steps = np.diff(clock, prepend=clock[:1])
    small = len(steps) == 0 or int(steps.max()) < 2**32
    part["clock"] = (
        int(clock[0]) if len(clock) else 0,
        steps.astype(np.uint32) if small else steps,
    )
    version = gather("ip_version")
    wide = np.flatnonzero(version != 4)
    part["wide"] = wide.astype(np.int32)
    for name in ("src", "dst"):
        column = gather(name)
        part[name] = np.ascontiguousarray(column.view(np.uint32)[:, 3])
        part[name + "6"] = np.take(column, wide, axis=0)
    quoting = np.flatnonzero((part["l4"] & L4_INNER) != 0)
    part["quoting"] = quoting.astype(np.int32)
    for name in INNER_COLUMNS:
        part[name] = np.take(gather(name), quoting, axis=0)
    return part


def _part_batch(part: dict[str, Any]) -> tuple[PacketBatch, np.ndarray]:
    """The part as a batch for the tracker (columns it does not read are zeros), and the
    rows' block-local clock."""
    n = len(part["verdict"])
    batch = PacketBatch.zeros(n)
    for name in STATE_COLUMNS:
        setattr(batch, name, part[name])
    batch.ip_version[...] = 4
    batch.ip_version[part["wide"]] = 6
    for name in ("src", "dst"):
        words = getattr(batch, name).view(np.uint32)
        words[:, 2] = V4_MAPPED_WORD
        words[:, 3] = part[name]
        getattr(batch, name)[part["wide"]] = part[name + "6"]
    for name in INNER_COLUMNS:
        getattr(batch, name)[part["quoting"]] = part[name]
    base, steps = part["clock"]
    clock = np.cumsum(steps, dtype=np.int64)
    clock += base
    return batch, clock


def state_step(
    previous: LaneStep | None,
    part: dict[str, Any],
    carry: int,
    step: int,
    limit: int = DEFAULT_MAX_CONNECTIONS,
) -> LaneStep:
    """Apply connection state to one block's rows of a group, at the capture's clock (`carry`:
    the largest timestamp of every block before). Output per row: the state's reason
    (established / related, or 0) | created | midstream bits."""
    lane = _lane(previous, step, limit)
    batch, clock = _part_batch(part)
    n = len(batch)
    verdict, rule = part["verdict"].copy(), part["rule"].astype(np.int32)
    reason = np.zeros(n, np.uint8)
    created, midstream = np.zeros(n, np.int8), np.zeros(n, np.int8)
    side = np.zeros(n, np.int32), np.zeros(n, np.uint8)
    times = np.maximum(clock, carry)
    # by batches of one process's size: the tracker makes room for a batch's creations
    for i in range(0, n, DEFAULT_BATCH_SIZE):
        at = slice(i, i + DEFAULT_BATCH_SIZE)
        lane.tracker.apply(
            batch.slice(i, i + DEFAULT_BATCH_SIZE), verdict[at], reason[at], rule[at],
            side[0][at], side[1][at], side[0][at], side[1][at], created[at], midstream[at],
            times=times[at],
        )  # fmt: skip
    lane.steps += 1
    out = reason
    out |= created.view(np.uint8) * np.uint8(OUT_CREATED)
    out |= midstream.view(np.uint8) * np.uint8(OUT_MIDSTREAM)
    return LaneStep(lane, out)


# --- finish --------------------------------------------------------------------------------


@dataclass
class Finished:
    """A finished block: its statistics and, when asked for, its per-packet results."""

    stats: SummaryBuilder
    results: list[BatchResult]
    slow_path: int
    first_ns: int | None  # the timestamps of the block's first and last records
    last_ns: int | None

    def __sizeof__(self) -> int:
        size = self.stats.timeline.counts.nbytes + 64 * len(self.stats.denied.keys) + 4096
        for result in self.results:
            size += sum(a.nbytes for a in result.batch.columns().values())
        return int(size)


def finish(
    engine: BatchEngine,
    decoded: Decoded,
    outs: list[tuple[int, np.ndarray]],
    stateful: bool,
    batch_size: int,
    results: bool,
) -> Finished:
    """Write the state's answers (`outs`: per state group, its step's output) into the block's
    verdicts as one process's tracker would have, piece by piece, then count the pieces'
    statistics."""
    stats = SummaryBuilder(engine.rules, engine.instance_ids, stateful)
    done: list[BatchResult] = []
    taken = {group: 0 for group, _ in outs}
    block = decoded.block
    for p, (piece, judged) in enumerate(zip(decoded.pieces, decoded.verdicts, strict=True)):
        v = {name: getattr(judged, name) for name in VERDICT_COLUMNS}
        v.update({name: v[name].copy() for name in FINAL_COLUMNS})
        n = len(piece)
        created, midstream = np.zeros(n, np.int8), np.zeros(n, np.int8)
        for group, out in outs:
            rows = decoded.state[p][group]
            lo, taken[group] = taken[group], taken[group] + len(rows)
            mine = out[lo : taken[group]]
            reason = mine & OUT_REASON_MASK
            created[rows] = (mine & OUT_CREATED) != 0
            midstream[rows] = (mine & OUT_MIDSTREAM) != 0
            by_state = reason >= REASON_ESTABLISHED
            at = rows[by_state]
            v["verdict"][at] = VERDICT_ALLOW
            v["reason"][at] = reason[by_state]
            v["rule"][at] = -1
            v["instance"][at] = v["new_instance"][at]
            v["direction"][at] = v["new_direction"][at]
            # packets allowed by state were not decided by any rule on either side
            v["egress_rule"][at] = -1
            v["ingress_rule"][at] = -1
        for i in range(0, n, batch_size):
            s = slice(i, i + batch_size)
            stats.add(
                piece.slice(i, i + batch_size), v["verdict"][s], v["reason"][s], v["rule"][s],
                v["instance"][s], v["direction"][s], created[s] if stateful else None,
                midstream[s] if stateful else None,
                side_rules=(v["egress_rule"][s], v["ingress_rule"][s]),
            )  # fmt: skip
        if results:
            done.append(
                BatchResult(block.path, block.file_number, piece, v["verdict"], v["reason"],
                            v["rule"], v["instance"], v["direction"], created, midstream,
                            v["egress_rule"], v["ingress_rule"])
            )  # fmt: skip
    stats.rules, stats.instance_ids = [], []  # the driver's builder has them: need not travel
    pieces = [piece for piece in decoded.pieces if len(piece)]
    first = int(pieces[0].ts_ns[0]) if pieces else None
    last = int(pieces[-1].ts_ns[-1]) if pieces else None
    return Finished(stats, done, decoded.slow_path, first, last)


def version() -> str:
    """The package's version on this worker."""
    from classifier import __version__

    return __version__
