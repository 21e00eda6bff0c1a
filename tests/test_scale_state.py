"""The engine's pieces the scale-out stands on: trackers given the capture's clock (`times=`),
trackers that pickle, and summaries that merge exactly (`SummaryBuilder.merge`)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.engine import Engine
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.pipeline import Classification
from classifier.engine.stats import SummaryBuilder
from classifier.packets import Packet, PacketBatch
from classifier.policy import Policy
from classifier.scale.tasks import address_hash, pair_groups
from tests.strategies import policy_and_sequences

SLOW = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def stateful_columns(
    engine: Engine, batch: PacketBatch, tracker: ConnectionTracker, times: np.ndarray | None
) -> list[np.ndarray]:
    tracker.join_fragments(batch, times=times)
    v = engine.classify(batch)
    created, midstream = np.zeros(len(batch), np.int8), np.zeros(len(batch), np.int8)
    tracker.apply(
        batch, v.verdict, v.reason, v.rule, v.instance, v.direction, v.new_instance,
        v.new_direction, created, midstream, times=times,
    )  # fmt: skip
    return [v.verdict, v.reason, v.rule, v.instance, v.direction, created, midstream]


@SLOW
@given(scenario=policy_and_sequences(max_size=40))
def test_times_are_the_running_clock(twin_mode: str, scenario: tuple[Policy, list[Packet]]) -> None:
    """Given the running maximum of the timestamps as `times`, a tracker does exactly what it
    does reading `ts_ns` itself (semantics section 4: the clock never goes back)."""
    policy, packets = scenario
    engine = Engine(policy)
    batch = PacketBatch.from_packets(packets)
    again = PacketBatch.from_packets(packets)
    plain, timed = ConnectionTracker(), ConnectionTracker()
    a = stateful_columns(engine, batch, plain, None)
    b = stateful_columns(engine, again, timed, np.maximum.accumulate(again.ts_ns))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert plain.clock_ns == timed.clock_ns
    assert np.array_equal(plain._core.flows, timed._core.flows)


@SLOW
@given(scenario=policy_and_sequences(max_size=40), cut=st.integers(0, 40))
def test_a_tracker_pickles_mid_capture(scenario: tuple[Policy, list[Packet]], cut: int) -> None:
    """Pickled after some packets and unpickled (on either twin), a tracker goes on exactly as
    the one that never left."""
    policy, packets = scenario
    engine = Engine(policy)
    cut = min(cut, len(packets))
    for twin in ("compiled", "python"):
        whole, moved = ConnectionTracker(), ConnectionTracker()
        first = PacketBatch.from_packets(packets[:cut])
        expected = stateful_columns(engine, first, whole, None)
        assert all(
            np.array_equal(x, y)
            for x, y in zip(
                expected,
                stateful_columns(engine, PacketBatch.from_packets(packets[:cut]), moved, None),
                strict=True,
            )
        )
        data = pickle.dumps(moved)
        old = os.environ.get("CLASSIFIER_NO_EXTENSIONS")
        os.environ["CLASSIFIER_NO_EXTENSIONS"] = "1" if twin == "python" else ""
        try:
            moved = pickle.loads(data)
            rest = packets[cut:]
            a = stateful_columns(engine, PacketBatch.from_packets(rest), whole, None)
            b = stateful_columns(engine, PacketBatch.from_packets(rest), moved, None)
        finally:
            if old is None:
                del os.environ["CLASSIFIER_NO_EXTENSIONS"]
            else:
                os.environ["CLASSIFIER_NO_EXTENSIONS"] = old
        assert moved.implementation == ("_conntrack_py" if twin == "python" else "_conntrack")
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert (whole.clock_ns, whole.connections_created) == (
            moved.clock_ns,
            moved.connections_created,
        )


@SLOW
@given(
    scenario=policy_and_sequences(max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    stateful=st.booleans(),
)
def test_summaries_merge_exactly(
    scenario: tuple[Policy, list[Packet]], cuts: list[int], stateful: bool
) -> None:
    """Builders fed consecutive parts of a run, merged in order, give the one builder's
    summary byte for byte: counts, sides, rules, top denied (ties too), time, timeline."""
    policy, packets = scenario
    engine = Engine(policy)
    run = Classification(engine, stateful=stateful)
    results = [run.classify_batch(PacketBatch.from_packets(packets))]
    whole = json.dumps(run.summary(top=3))
    result = results[0]
    bounds = sorted({0, len(packets), *(min(c, len(packets)) for c in cuts)})
    merged = SummaryBuilder(engine.rules, engine.instance_ids, stateful)
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        part = SummaryBuilder(engine.rules, engine.instance_ids, stateful)
        part.add(
            result.batch.slice(lo, hi),
            result.verdict[lo:hi],
            result.reason[lo:hi],
            result.rule[lo:hi],
            result.instance[lo:hi],
            result.direction[lo:hi],
            result.created[lo:hi] if stateful else None,
            result.midstream[lo:hi] if stateful else None,
            side_rules=(result.egress_rule[lo:hi], result.ingress_rule[lo:hi]),
        )
        merged.merge(part)
    merged.merge(SummaryBuilder(engine.rules, engine.instance_ids, stateful))  # nothing
    assert json.dumps(merged.summary(top=3)) == whole


def test_pair_groups_are_symmetric_and_spread() -> None:
    rng = np.random.default_rng(16)
    a = rng.integers(0, 256, (5000, 16), dtype=np.uint8)
    b = rng.integers(0, 256, (5000, 16), dtype=np.uint8)
    for groups in (1, 2, 7, 64):
        forward, backward = pair_groups(a, b, groups), pair_groups(b, a, groups)
        assert np.array_equal(forward, backward)
        assert forward.max() < groups
        if groups > 1:
            assert np.bincount(forward, minlength=groups).min() > 5000 / groups / 2
    assert not np.array_equal(address_hash(a), address_hash(b))
