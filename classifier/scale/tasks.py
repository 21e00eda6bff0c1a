"""What the workers run: decode and judge a block, join fragments and apply state per group of
keys, finish a block (state written back, its statistics). Pure functions of their inputs.

Every function here is a Dask task body (`classifier.scale.runner` submits them), and none
needs Dask: they take and return plain objects (numpy arrays, batches, trackers), so they are
deterministic and a task run twice (after a lost worker) returns the same thing. Inputs are
never changed in place, with one exception kept safe on purpose: a lane's tracker (`Lane`)
is advanced by the next step of its chain, and `Lane.steps` checks that each step sees it
exactly as the previous step left it (else `LaneError`, never a silently different result).

Groups. A row of a block takes part in connection state when the rules judged it (verdict
allow or deny); its group is a symmetric hash of the two addresses its state key is made of:
the quoted header's source and destination for an ICMP error that quotes one (the `related`
check reads that connection), the outer source and destination otherwise. So every packet of
a connection, both directions, and every error quoting it fall in one group (semantics
section 4; scale.md section 3). Fragments are joined per group of the outer addresses (a
datagram has one source and destination), in a chain of their own before that: the first
fragment of an ICMP error carries the quoted header and lands, for state, in the quoted
connection's group, while its later fragments are known as errors only once joined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classifier.codes import (
    FRAGMENT_LATER,
    ICMP_ERROR_TYPES,
    L4_ICMP,
    L4_INNER,
    PROTO_ICMP,
    PROTO_ICMPV6,
    REASON_ESTABLISHED,
    STATUS_L4_TRUNCATED,
    STATUS_OK,
    VERDICT_ALLOW,
    VERDICT_DENY,
)
from classifier.engine.columns import BatchEngine, BatchResult, StatelessVerdicts
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.stats import SummaryBuilder
from classifier.errors import PcapError
from classifier.packets import COLUMNS, PacketBatch
from classifier.pcap import DEFAULT_BATCH_SIZE, open_capture

# the columns connection tracking reads for `apply` (and that a state part carries)
STATE_COLUMNS = ("ip_version", "protocol", "l4", "sport", "dport", "icmp_type", "icmp_id",
                 "tcp_flags")  # fmt: skip
INNER_COLUMNS = ("inner_protocol", "inner_src", "inner_dst", "inner_sport", "inner_dport",
                 "inner_icmp_type", "inner_icmp_id")  # fmt: skip
# the columns fragment joining writes into later fragments
JOINED_COLUMNS = ("l4", "sport", "dport", "icmp_type", "icmp_code", "icmp_id", "tcp_flags",
                  "protocol", *INNER_COLUMNS)  # fmt: skip
VERDICT_COLUMNS = ("verdict", "reason", "rule", "instance", "direction", "new_instance",
                   "new_direction", "egress_rule", "ingress_rule")  # fmt: skip
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
    batch: PacketBatch
    verdicts: StatelessVerdicts
    slow_path: int  # records decoded through scapy
    clock: np.ndarray  # int64 running maximum of the block's timestamps
    groups: int
    state_rows: list[np.ndarray] = field(default_factory=list)  # block rows per state group
    join_rows: list[np.ndarray] = field(default_factory=list)  # fragment rows per join group
    later: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # later fragments

    def __sizeof__(self) -> int:  # what Dask counts (and weighs before moving it)
        arrays = [*self.batch.columns().values(), self.clock, *self.state_rows, *self.join_rows]
        arrays += [getattr(self.verdicts, name) for name in VERDICT_COLUMNS]
        return sum(a.nbytes for a in arrays) + 1024

    def meta(self) -> dict[str, Any]:
        """The small facts the driver needs to plan the block's next steps."""
        return {
            "records": len(self.batch),
            "max_ts": int(self.clock[-1]) if len(self.clock) else None,
            "slow_path": self.slow_path,
            "state": [len(rows) for rows in self.state_rows],
            "join": [len(rows) for rows in self.join_rows],
            "later": len(self.later),
        }


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


def _mix(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, in place."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


def address_hash(addresses: np.ndarray) -> np.ndarray:
    """A 64-bit hash (uint64) of each row of a (n, 16) uint8 address column."""
    words = np.ascontiguousarray(addresses).view(np.uint64)
    high = _mix(words[:, 1].copy())
    high ^= words[:, 0]
    return _mix(high)


def pair_groups(a: np.ndarray, b: np.ndarray, groups: int) -> np.ndarray:
    """The group (0..groups-1, uint16) of each row's unordered pair of 16-byte addresses: a
    symmetric hash (the two addresses' hashes summed, mixed again), modulo `groups`."""
    h = address_hash(a)
    h += address_hash(b)
    return _group_of(h, groups)


def _group_of(pair_hash: np.ndarray, groups: int) -> np.ndarray:
    return (_mix(pair_hash) % np.uint64(groups)).astype(np.uint16)


def _gather(column: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.take(column, rows, axis=0)  # 4x faster than column[rows] on (n, 16) columns


def take(batch: PacketBatch, rows: np.ndarray, names: tuple[str, ...] = tuple(COLUMNS)) -> Any:
    """The given rows of the named columns: a PacketBatch for every column, else a dict."""
    columns = {name: _gather(getattr(batch, name), rows) for name in names}
    return PacketBatch(**columns) if len(names) == len(COLUMNS) else columns


def _split(rows: np.ndarray, group: np.ndarray, groups: int) -> list[np.ndarray]:
    """`rows` by their group (uint16), each in capture order (a stable radix sort)."""
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(groups + 1))
    ordered = rows[order]
    return [ordered[bounds[g] : bounds[g + 1]] for g in range(groups)]


def _quoting_errors(batch: PacketBatch, rows: np.ndarray) -> np.ndarray:
    """Which of the rows are ICMP errors with a captured quoted header (the tracker looks
    up the quoted header's key for them: semantics section 4, step 2)."""
    version, protocol, t = batch.ip_version[rows], batch.protocol[rows], batch.icmp_type[rows]
    l4 = batch.l4[rows]
    v4, v6 = version == 4, version == 6
    icmp = (v4 & (protocol == PROTO_ICMP)) | (v6 & (protocol == PROTO_ICMPV6))
    error = (v4 & np.isin(t, sorted(ICMP_ERROR_TYPES[4]))) | (
        v6 & np.isin(t, sorted(ICMP_ERROR_TYPES[6]))
    )
    known: np.ndarray = icmp & error & ((l4 & L4_ICMP) != 0) & ((l4 & L4_INNER) != 0)
    return known


# --- decode --------------------------------------------------------------------------------


def decode(
    engine: BatchEngine, block: Block, stateful: bool, batch_size: int, groups: int
) -> Decoded:
    """Read the block's records, judge them by the rules, and (stateful) sort its rows into
    groups: those of connection state now, unless later fragments wait for their joining."""
    try:
        with open_capture(block.location) as capture:
            capture.resume(block.state)
            batches = list(capture.batches(max(block.records, 1), end=block.end))
            slow_path = capture.slow_path
    except PcapError as error:
        raise PcapError(str(error).replace(block.location, block.path, 1)) from None
    batch = batches[0] if len(batches) == 1 else PacketBatch.concatenate(batches)
    if len(batch) != block.records:
        raise PcapError(
            f"{block.path}: the file changed while it was read: {len(batch)} records from byte "
            f"offset {block.start}, not {block.records}"
        )
    verdicts = _classify(engine, batch, batch_size)
    decoded = Decoded(block, batch, verdicts, slow_path, np.maximum.accumulate(batch.ts_ns), groups)
    if stateful:
        usable = (batch.status == STATUS_OK) | (batch.status == STATUS_L4_TRUNCATED)
        fragments = np.flatnonzero(usable & (batch.fragment != 0))
        if len(fragments):
            join = pair_groups(_gather(batch.src, fragments), _gather(batch.dst, fragments), groups)
            decoded.join_rows = _split(fragments, join, groups)
            decoded.later = fragments[batch.fragment[fragments] == FRAGMENT_LATER]
        if not len(decoded.later):
            _sort_state_rows(decoded)
    return decoded


def _classify(engine: BatchEngine, batch: PacketBatch, batch_size: int) -> StatelessVerdicts:
    """The engine's stateless verdicts, `batch_size` rows at a time (as one process)."""
    n = len(batch)
    if n <= batch_size:
        return engine.classify(batch)
    parts = [engine.classify(batch.slice(i, i + batch_size)) for i in range(0, n, batch_size)]
    return StatelessVerdicts(
        **{name: np.concatenate([getattr(p, name) for p in parts]) for name in VERDICT_COLUMNS}
    )


def _sort_state_rows(decoded: Decoded) -> None:
    """The rows the rules judged, by state group: the pair of outer addresses, or for an ICMP
    error that quotes a header, the pair of the quoted header's addresses."""
    batch, verdict = decoded.batch, decoded.verdicts.verdict
    rows = np.flatnonzero((verdict == VERDICT_ALLOW) | (verdict == VERDICT_DENY))
    h = address_hash(batch.src)
    h += address_hash(batch.dst)
    h = h[rows]
    quoting = np.flatnonzero(_quoting_errors(batch, rows))
    if len(quoting):
        inner = rows[quoting]
        q = address_hash(_gather(batch.inner_src, inner))
        q += address_hash(_gather(batch.inner_dst, inner))
        h[quoting] = q
    decoded.state_rows = _split(rows, _group_of(h, decoded.groups), decoded.groups)


def meta(decoded: Decoded) -> dict[str, Any]:
    return decoded.meta()


# --- fragments -----------------------------------------------------------------------------


def join_part(decoded: Decoded, group: int) -> tuple[PacketBatch, np.ndarray]:
    """The fragment rows of one join group (every column) and their block-local clock."""
    rows = decoded.join_rows[group]
    return take(decoded.batch, rows), decoded.clock[rows]


def join_step(
    previous: LaneStep | None, part: tuple[PacketBatch, np.ndarray], carry: int, step: int
) -> LaneStep:
    """Join one block's fragments of a group at the capture's clock; the output is the joined
    columns of its later fragments."""
    lane = _lane(previous, step)
    batch, clock = part
    times = np.maximum(clock, carry)
    for i in range(0, len(batch), DEFAULT_BATCH_SIZE):
        at = slice(i, i + DEFAULT_BATCH_SIZE)
        lane.tracker.join_fragments(batch.slice(i, i + DEFAULT_BATCH_SIZE), times=times[at])
    later = np.flatnonzero(batch.fragment == FRAGMENT_LATER)
    lane.steps += 1
    return LaneStep(lane, take(batch, later, JOINED_COLUMNS))


def _lane(previous: LaneStep | None, step: int) -> Lane:
    lane = Lane(ConnectionTracker()) if previous is None else previous.lane
    if lane.steps != step:
        raise LaneError(f"a chain's step {step} found its tracker after {lane.steps} steps")
    return lane


def output(done: LaneStep) -> Any:
    return done.out


def rejoin(engine: BatchEngine, decoded: Decoded, joined: list[tuple[int, Any]]) -> Decoded:
    """The block with its later fragments joined (`joined`: per join group, the output of its
    join step) and judged again by the rules, then sorted into state groups. A new Decoded:
    the columns it changes are copies."""
    batch = PacketBatch(**decoded.batch.columns())
    for name in JOINED_COLUMNS:
        setattr(batch, name, getattr(batch, name).copy())
    for group, columns in joined:
        rows = decoded.join_rows[group]
        later = rows[batch.fragment[rows] == FRAGMENT_LATER]
        for name in JOINED_COLUMNS:
            getattr(batch, name)[later] = columns[name]
    verdicts = StatelessVerdicts(
        **{name: getattr(decoded.verdicts, name).copy() for name in VERDICT_COLUMNS}
    )
    again = engine.classify(take(batch, decoded.later))
    for name in VERDICT_COLUMNS:
        getattr(verdicts, name)[decoded.later] = getattr(again, name)
    fixed = Decoded(
        decoded.block,
        batch,
        verdicts,
        decoded.slow_path,
        decoded.clock,
        decoded.groups,
        join_rows=decoded.join_rows,
        later=decoded.later,
    )
    _sort_state_rows(fixed)
    return fixed


# --- connection state ----------------------------------------------------------------------


def state_part(decoded: Decoded, group: int) -> dict[str, np.ndarray]:
    """What a group's tracker needs of the block's rows in it: the columns of its keys and
    flags, the stateless verdict and rule, the block-local clock; IPv4 addresses as 4 bytes
    when every row is IPv4; the quoted header only for the ICMP errors that have one."""
    rows = decoded.state_rows[group]
    batch = decoded.batch
    part: dict[str, np.ndarray] = take(batch, rows, STATE_COLUMNS)
    part["clock"] = decoded.clock[rows]
    part["verdict"] = decoded.verdicts.verdict[rows]
    part["rule"] = decoded.verdicts.rule[rows]
    wide = bool((part["ip_version"] != 4).any())
    for name in ("src", "dst"):
        column = getattr(batch, name)
        # IPv4 as its 4-byte word (bytes 12..15 of the mapped address), when all are IPv4
        part[name] = _gather(column if wide else column.view(np.uint32)[:, 3], rows)
    quoting = np.flatnonzero((batch.l4[rows] & L4_INNER) != 0)
    part["quoting"] = quoting
    part.update(take(batch, rows[quoting], INNER_COLUMNS))
    return part


def _part_batch(part: dict[str, np.ndarray]) -> PacketBatch:
    n = len(part["verdict"])
    batch = PacketBatch.zeros(n)
    for name in STATE_COLUMNS:
        setattr(batch, name, part[name])
    for name in ("src", "dst"):
        if part[name].ndim == 2:
            setattr(batch, name, part[name])
        else:  # 4-byte IPv4 words back into mapped addresses
            words = getattr(batch, name).view(np.uint32)
            words[:, 2] = V4_MAPPED_WORD
            words[:, 3] = part[name]
    quoting = part["quoting"]
    for name in INNER_COLUMNS:
        getattr(batch, name)[quoting] = part[name]
    return batch


def state_step(
    previous: LaneStep | None, part: dict[str, np.ndarray], carry: int, step: int
) -> LaneStep:
    """Apply connection state to one block's rows of a group, at the capture's clock (`carry`:
    the largest timestamp of every block before). Output per row: the state's reason
    (established / related, or 0) | created | midstream bits."""
    lane = _lane(previous, step)
    n = len(part["verdict"])
    verdict, rule = part["verdict"].copy(), part["rule"].copy()
    reason = np.zeros(n, np.uint8)
    created, midstream = np.zeros(n, np.int8), np.zeros(n, np.int8)
    side = np.zeros(n, np.int32), np.zeros(n, np.uint8)
    batch, times = _part_batch(part), np.maximum(part["clock"], carry)
    # by batches of one process's size: the tracker makes room for a batch's creations
    for i in range(0, n, DEFAULT_BATCH_SIZE):
        at = slice(i, i + DEFAULT_BATCH_SIZE)
        lane.tracker.apply(
            batch.slice(i, i + DEFAULT_BATCH_SIZE), verdict[at], reason[at], rule[at],
            side[0][at], side[1][at], side[0][at], side[1][at], created[at], midstream[at],
            times=times[at],
        )  # fmt: skip
    lane.steps += 1
    out = (
        reason | (created.view(np.uint8) * OUT_CREATED) | (midstream.view(np.uint8) * OUT_MIDSTREAM)
    )
    return LaneStep(lane, out)


# --- finish --------------------------------------------------------------------------------


@dataclass
class Finished:
    """A finished block: its statistics and, when asked for, its per-packet result."""

    stats: SummaryBuilder
    result: BatchResult | None
    slow_path: int

    def __sizeof__(self) -> int:
        size = self.stats.timeline.counts.nbytes + 64 * len(self.stats.denied.keys) + 4096
        if self.result is not None:
            size += sum(a.nbytes for a in self.result.batch.columns().values())
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
    verdicts as one process's tracker would have, then count the block's statistics."""
    v = StatelessVerdicts(
        **{name: getattr(decoded.verdicts, name).copy() for name in VERDICT_COLUMNS}
    )
    n = len(decoded.batch)
    created, midstream = np.zeros(n, np.int8), np.zeros(n, np.int8)
    for group, out in outs:
        rows = decoded.state_rows[group]
        reason = out & OUT_REASON_MASK
        created[rows] = (out & OUT_CREATED) != 0
        midstream[rows] = (out & OUT_MIDSTREAM) != 0
        by_state = rows[reason >= REASON_ESTABLISHED]
        v.verdict[by_state] = VERDICT_ALLOW
        v.reason[by_state] = reason[reason >= REASON_ESTABLISHED]
        v.rule[by_state] = -1
        v.instance[by_state] = v.new_instance[by_state]
        v.direction[by_state] = v.new_direction[by_state]
        # packets allowed by state were not decided by any rule on either side
        v.egress_rule[by_state] = -1
        v.ingress_rule[by_state] = -1
    stats = SummaryBuilder(engine.rules, engine.instance_ids, stateful)
    batch = decoded.batch
    for i in range(0, n, batch_size):
        at = slice(i, i + batch_size)
        stats.add(
            batch.slice(i, i + batch_size),
            v.verdict[at],
            v.reason[at],
            v.rule[at],
            v.instance[at],
            v.direction[at],
            created[at] if stateful else None,
            midstream[at] if stateful else None,
            side_rules=(v.egress_rule[at], v.ingress_rule[at]),
        )
    stats.rules, stats.instance_ids = [], []  # the driver's builder has them: need not travel
    block = decoded.block
    result = (
        BatchResult(block.path, block.file_number, batch, v.verdict, v.reason, v.rule,
                    v.instance, v.direction, created, midstream, v.egress_rule, v.ingress_rule)
        if results
        else None
    )  # fmt: skip
    return Finished(stats, result, decoded.slow_path)


def version() -> str:
    """The package's version on this worker."""
    from classifier import __version__

    return __version__
