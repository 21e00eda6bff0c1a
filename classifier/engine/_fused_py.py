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
) -> int:
    """Final columns, state and counters of one framed batch; returns the distinct denied
    tuples written to out_key/out_count/out_row. (`timeline_low`/`timeline_shift` are what
    the compiled pass counts with; `SummaryBuilder.count` reads them off the time line.)"""
    n = len(verdict)
    if n == 0:
        return 0
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
