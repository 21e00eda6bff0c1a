"""Pure-Python twin of `classifier.engine._fused`: the same names and results, by composition.

The compiled fused pass does in one set of nogil loops what the unfused pieces do one after
the other; this twin *is* those pieces one after the other: `Engine.classify` (stateless
verdicts), `Tracker.apply` (state), `SummaryBuilder.count` (the additive counters) and
`count_tuples` (the denied tuples), each of them on its own pure twin when
CLASSIFIER_NO_EXTENSIONS=1. So the twin states what the fused pass must compute, and the
differential tests hold the compiled pass to it (and both to `classifier.reference`). The
compiled pass's guesses and blocks (its design note) change no result, so they have no
counterpart here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from classifier.codes import REASON_ESTABLISHED, VERDICT_DENY
from classifier.engine import _engine_py
from classifier.packets import COLUMNS, PacketBatch


class FusedPolicy:
    """An engine, for the fused pass (the compiled module keeps C pointers to its arrays)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.n_chunks = len(engine.compiled.chunks)
        self.n_rules = len(engine.compiled.rules)
        self.n_instances = len(engine.compiled.instances)


def classify_batch(
    policy: FusedPolicy,
    batch: Any,
    tracker: Any,
    verdict: np.ndarray,
    reason: np.ndarray,
    rule: np.ndarray,
    instance: np.ndarray,
    direction: np.ndarray,
    created: np.ndarray,
    midstream: np.ndarray,
    egress_rule: np.ndarray,
    ingress_rule: np.ndarray,
    stats: Any,
    timeline_low: int,
    timeline_shift: int,
    slot_key: np.ndarray,
    slot_index: np.ndarray,
    out_key: np.ndarray,
    out_count: np.ndarray,
    out_row: np.ndarray,
    lane_of: np.ndarray | None = None,
    lane: int = 0,
) -> int:
    """Final columns, state and counters of one framed batch; returns the distinct denied
    tuples written to out_key/out_count/out_row. (`timeline_low`/`timeline_shift` are what
    the compiled pass counts with; `SummaryBuilder.count` reads them off the time line.)
    `lane_of`/`lane`: only the rows of that lane, at the clock of the whole batch."""
    n = len(verdict)
    if n == 0:
        return 0
    if lane_of is not None:
        outputs = (verdict, reason, rule, instance, direction, created, midstream, egress_rule,
                   ingress_rule)  # fmt: skip
        scratch = (slot_key, slot_index, out_key, out_count, out_row)
        return _classify_lane(
            policy, batch, tracker, outputs, stats, (timeline_low, timeline_shift), scratch,
            lane_of, lane,
        )  # fmt: skip
    stateless = policy.engine.classify(batch)
    verdict[:] = stateless.verdict
    reason[:] = stateless.reason
    rule[:] = stateless.rule
    instance[:] = stateless.instance
    direction[:] = stateless.direction
    egress_rule[:] = stateless.egress_rule
    ingress_rule[:] = stateless.ingress_rule
    created[:] = 0
    midstream[:] = 0
    if tracker is not None:
        tracker.apply(
            batch,
            verdict,
            reason,
            rule,
            instance,
            direction,
            stateless.new_instance,
            stateless.new_direction,
            created,
            midstream,
        )
        by_state = reason >= REASON_ESTABLISHED  # allowed by state: decided by no rule
        egress_rule[by_state] = -1
        ingress_rule[by_state] = -1
    stats.count(
        batch,
        verdict,
        reason,
        rule,
        instance,
        direction,
        created if tracker is not None else None,
        midstream if tracker is not None else None,
        side_rules=(egress_rule, ingress_rule),
    )
    denied = np.flatnonzero(verdict == VERDICT_DENY).astype(np.int64)
    return _engine_py.count_tuples(
        batch.src,
        batch.dst,
        batch.ip_version,
        batch.protocol,
        batch.l4,
        batch.dport,
        batch.icmp_type,
        batch.icmp_code,
        denied,
        slot_key,
        slot_index,
        out_key,
        out_count,
        out_row,
    )


def _classify_lane(
    policy: FusedPolicy,
    batch: Any,
    tracker: Any,
    outputs: tuple[np.ndarray, ...],
    stats: Any,
    timeline: tuple[int, int],
    scratch: tuple[np.ndarray, ...],
    lane_of: np.ndarray,
    lane: int,
) -> int:
    """The lane's rows as a batch of their own, given the effective times of the whole batch
    (`Tracker.apply(times=)`), their columns put back in place; the clock ends where the
    whole batch leaves it."""
    if len(lane_of) != len(batch):
        raise ValueError(f"lane_of has {len(lane_of)} rows, the batch {len(batch)}")
    rows = np.flatnonzero(lane_of == lane)
    times = None
    if tracker is not None:
        times = np.maximum.accumulate(np.maximum(batch.ts_ns, tracker.clock_ns))
    sub = PacketBatch(**{name: np.take(getattr(batch, name), rows, axis=0) for name in COLUMNS})
    parts = [np.empty(len(rows), column.dtype) for column in outputs]
    distinct = 0
    if len(rows):
        lane_tracker = tracker if times is None else _AtTimes(tracker, times[rows])
        v, rs, r, inst, d, c, mid, eg, ing = parts
        slot_key, slot_index, out_key, out_count, out_row = scratch
        distinct = classify_batch(
            policy, sub, lane_tracker, v, rs, r, inst, d, c, mid, eg, ing, stats, *timeline,
            slot_key, slot_index, out_key, out_count, out_row,
        )  # fmt: skip
        out_row[:distinct] = rows[out_row[:distinct]]
    for column, part in zip(outputs, parts, strict=True):
        column[rows] = part
    if tracker is not None:
        tracker.clock_ns = max(int(tracker.clock_ns), int(times[-1]))  # type: ignore[index]
    return distinct


class _AtTimes:
    """A tracker whose `apply` takes the given effective times (the lane's rows')."""

    def __init__(self, tracker: Any, times: np.ndarray):
        self.tracker, self.times = tracker, times

    def apply(self, *args: Any) -> None:
        self.tracker.apply(*args, times=self.times)
