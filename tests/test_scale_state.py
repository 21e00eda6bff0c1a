"""The engine's pieces the scale-out stands on: trackers given the capture's clock (`times=`),
trackers that pickle, and summaries that merge exactly (`SummaryBuilder.merge`)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier._twins import Twin
from classifier.codes import L4_ICMP, L4_INNER
from classifier.engine import Engine
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.pipeline import Classification
from classifier.engine.stats import SummaryBuilder
from classifier.limits import DEFAULT_MAX_CONNECTIONS
from classifier.packets import Packet, PacketBatch
from classifier.policy import Policy
from classifier.scale.tasks import lanes_of
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
@given(
    scenario=policy_and_sequences(max_size=40),
    cut=st.integers(0, 40),
    limit=st.sampled_from([DEFAULT_MAX_CONNECTIONS, 1, 2, 3]),
)
def test_a_tracker_pickles_mid_capture(
    scenario: tuple[Policy, list[Packet]], cut: int, limit: int
) -> None:
    """Pickled after some packets and unpickled (on either twin), a tracker goes on exactly as
    the one that never left, under a connection limit too (the eviction heaps are rebuilt on
    arrival: the same connections are forgotten, in the same order)."""
    policy, packets = scenario
    engine = Engine(policy)
    cut = min(cut, len(packets))
    for twin in ("compiled", "python"):
        whole = ConnectionTracker(max_connections=limit)
        moved = ConnectionTracker(max_connections=limit)
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
        assert (whole.max_connections, whole.evicted) == (moved.max_connections, moved.evicted)


def test_a_tracker_keeping_records_is_not_pickled() -> None:
    with pytest.raises(TypeError, match="connection records"):
        pickle.dumps(ConnectionTracker(record_flows=True))


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


def test_row_lanes_twins_agree_symmetric_and_spread() -> None:
    """Both twins give every row the same lane (a cluster may mix them), the two directions
    of a pair the same lane, an ICMP error quoting a header that header's pair's lane, and
    spread pairs evenly."""
    compiled, twin = Twin("classifier.scale._scale").both()
    rng = np.random.default_rng(16)
    n = 5000
    batch = PacketBatch.zeros(n)
    batch.src[...] = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    batch.dst[...] = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    batch.inner_src[...] = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    batch.inner_dst[...] = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    v4 = rng.integers(0, 2, n).astype(bool)  # IPv4 as the reader stores it: ::ffff:a.b.c.d
    for column in (batch.src, batch.dst, batch.inner_src, batch.inner_dst):
        column[v4, :10], column[v4, 10:12] = 0, 0xFF
    batch.ip_version[...] = np.where(v4, 4, 6)
    batch.protocol[...] = np.where(v4, 1, 58) * rng.integers(0, 2, n)
    batch.icmp_type[...] = rng.integers(0, 13, n)
    batch.l4[...] = rng.integers(0, 256, n)
    quoting = (
        ((batch.l4 & L4_ICMP) != 0)
        & ((batch.l4 & L4_INNER) != 0)
        & (batch.protocol > 0)
        & np.where(v4, np.isin(batch.icmp_type, (3, 4, 5, 11, 12)), (batch.icmp_type >= 1)
                   & (batch.icmp_type <= 4))
    )  # fmt: skip
    assert 0 < quoting.sum() < n
    for lanes in (1, 2, 7, 64, 65536):
        found = []
        for module in (compiled, twin):
            lane = np.full(n, 0xABCD, np.uint16)
            module.row_lanes(
                batch.ip_version, batch.protocol, batch.l4, batch.icmp_type, batch.src,
                batch.dst, batch.inner_src, batch.inner_dst, lanes, lane,
            )  # fmt: skip
            found.append(lane)
        lane, twin_lane = found
        assert np.array_equal(lane, twin_lane)
        assert int(lane.max()) < lanes
        if 1 < lanes < 100:
            for rows in (np.flatnonzero(v4 & ~quoting), np.flatnonzero(~v4 & ~quoting)):
                counts = np.bincount(lane[rows], minlength=lanes)
                assert counts.min() > len(rows) / lanes / 2
        quoted = PacketBatch(**batch.columns())  # the quoted pair as the row's own
        quoted.src, quoted.dst = batch.inner_src, batch.inner_dst
        quoted.l4 = np.zeros(n, np.uint8)
        assert np.array_equal(lanes_of(quoted, lanes)[quoting], lane[quoting])
    swapped = PacketBatch(**batch.columns())
    swapped.src, swapped.dst = batch.dst, batch.src
    swapped.inner_src, swapped.inner_dst = batch.inner_dst, batch.inner_src
    assert lanes_of(batch, 7).tolist() == lanes_of(swapped, 7).tolist()
    for module in (compiled, twin):
        with pytest.raises(ValueError, match="lanes must be"):
            module.row_lanes(
                batch.ip_version, batch.protocol, batch.l4, batch.icmp_type, batch.src,
                batch.dst, batch.inner_src, batch.inner_dst, 0, np.empty(n, np.uint16),
            )  # fmt: skip
        with pytest.raises(ValueError, match="one entry per row"):
            module.row_lanes(
                batch.ip_version[1:], batch.protocol, batch.l4, batch.icmp_type, batch.src,
                batch.dst, batch.inner_src, batch.inner_dst, 2, np.empty(n, np.uint16),
            )  # fmt: skip
