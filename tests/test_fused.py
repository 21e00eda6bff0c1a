"""The fused pass (engine/_fused) equals the pieces it fuses and the reference, on both twins.

`Classification` takes the fused pass by default (the differential tests of test_engine.py run
through it); here it is held to the unfused pieces (`Engine.classify`, `Tracker.apply`,
`SummaryBuilder.add`) column by column and summary by summary, across blocks, chunks, group
mode, and the one case where its guess about state is wrong.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import end_to_end, synth
from classifier import reference
from classifier.codes import REASON_NAMES, TCP_ACK, TCP_FIN, TCP_SYN, VERDICT_NAMES
from classifier.engine import Classification, Engine
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.pipeline import classify_fused
from classifier.engine.stats import SummaryBuilder
from classifier.limits import DEFAULT_MAX_CONNECTIONS
from classifier.packets import Packet, PacketBatch
from classifier.policy import Instance, Policy, Rule, SecurityGroup, load_policy_data
from classifier.scale.tasks import lanes_of
from tests import strategies

COLUMNS = (
    "verdict",
    "reason",
    "rule",
    "instance",
    "direction",
    "created",
    "midstream",
    "egress_rule",
    "ingress_rule",
)


def run_both(
    engine: Engine, batches: list[PacketBatch], stateful: bool, **kw: Any
) -> tuple[dict[str, Any], ...]:
    """(columns, summary) of the fused and of the unfused run over copies of `batches`."""
    out = []
    for fused in (True, False):
        run = Classification(engine, stateful=stateful, fused=fused, **kw)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
        for batch in batches:
            copy = PacketBatch(**{k: v.copy() for k, v in batch.columns().items()})
            result = run.classify_batch(copy)
            for name in COLUMNS:
                parts[name].append(getattr(result, name))
        columns = {name: np.concatenate(chunks) for name, chunks in parts.items()}
        out.append({"columns": columns, "summary": run.summary(top=1000)})
    return tuple(out)


def assert_same(fused: dict[str, Any], pieces: dict[str, Any]) -> None:
    for name in COLUMNS:
        np.testing.assert_array_equal(fused["columns"][name], pieces["columns"][name], name)
    assert fused["summary"] == pieces["summary"]


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=strategies.policy_and_sequences())
def test_fused_equals_the_pieces_on_random_policies(
    twin_mode: str, scenario: tuple[Policy, list[Packet]]
) -> None:
    policy, packets = scenario
    engine = Engine(policy)
    batch = PacketBatch.from_packets(packets)
    batches = [batch.slice(i, i + 5) for i in range(0, len(packets), 5)]
    for stateful in (True, False):
        fused, pieces = run_both(engine, batches, stateful)
        assert_same(fused, pieces)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=strategies.policy_and_sequences(max_size=40), limit=st.integers(1, 4))
def test_fused_equals_the_pieces_and_the_reference_under_a_limit(
    twin_mode: str, scenario: tuple[Policy, list[Packet]], limit: int
) -> None:
    """Tiny connection limits (evictions inside a block of the fused pass)."""
    policy, packets = scenario
    engine = Engine(policy)
    batch = PacketBatch.from_packets(packets)
    batches = [batch.slice(i, i + 7) for i in range(0, len(packets), 7)]
    fused, pieces = run_both(engine, batches, True, max_connections=limit)
    assert_same(fused, pieces)
    oracle = reference.StatefulReference(policy, max_connections=limit)
    want = oracle.run(packets)
    assert [REASON_NAMES[r] for r in fused["columns"]["reason"]] == [v.reason for v in want]
    assert [bool(c) for c in fused["columns"]["created"]] == [v.created for v in want]
    connections = fused["summary"]["connections"]
    assert (connections["limit"], connections["evicted"]) == (limit, oracle.evicted)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=strategies.policy_and_sequences(), lanes=st.integers(2, 4))
def test_lanes_together_equal_one_tracker(
    twin_mode: str, scenario: tuple[Policy, list[Packet]], lanes: int
) -> None:
    """The scale-out's lanes (classifier.scale.tasks): each its own tracker and statistics,
    each the whole batch with its fragments joined and only its rows classified, at the
    clock of every row; together the columns and the summary of one tracker."""
    policy, packets = scenario
    engine = Engine(policy)
    batch = PacketBatch.from_packets(packets)
    batches = [batch.slice(i, i + 5) for i in range(0, len(packets), 5)]
    one, _ = run_both(engine, batches, True)
    trackers = [ConnectionTracker() for _ in range(lanes)]
    builders = [SummaryBuilder(engine.rules, engine.instance_ids, True) for _ in range(lanes)]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
    for piece in batches:
        columns = {name: np.full(len(piece), -99, np.int64) for name in COLUMNS}
        for lane in range(lanes):
            copy = PacketBatch(**{k: v.copy() for k, v in piece.columns().items()})
            trackers[lane].join_fragments(copy)
            lane_of = lanes_of(copy, lanes)
            result = classify_fused(
                engine, trackers[lane].core, builders[lane], copy, lane_of=lane_of, lane=lane
            )
            rows = np.flatnonzero(lane_of == lane)
            for name in COLUMNS:
                assert np.all(columns[name][rows] == -99)  # every row in one lane only
                columns[name][rows] = getattr(result, name)[rows]
        for name in COLUMNS:
            parts[name].append(columns[name])
    for name in COLUMNS:
        got = np.concatenate(parts[name]) if parts[name] else np.zeros(0, np.int64)
        np.testing.assert_array_equal(got, one["columns"][name].astype(np.int64), name)
    merged = builders[0]
    for other in builders[1:]:
        other.packets = 0  # lane 0 counts them
        merged.merge(other)
    merged.connection_limit = DEFAULT_MAX_CONNECTIONS
    assert merged.summary(top=1000) == one["summary"]


@pytest.mark.parametrize("budget", [1_000_000, -1], ids=["sequence-mode", "group-mode"])
def test_fused_equals_the_pieces_on_a_synthetic_capture(
    tmp_path: Path, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of packets (several blocks of the fused pass), many chunks, both modes."""
    import classifier.engine.build as build_module
    from classifier import pcap

    monkeypatch.setattr(build_module, "CHUNK_ROWS", 200)
    monkeypatch.setattr(build_module, "SEQUENCE_ROWS_BUDGET", budget)
    engine = Engine(load_policy_data(end_to_end.build_policy_data(40), "synthetic"))
    assert engine.mode == ("sequence" if budget > 0 else "group")
    assert len(engine.compiled.chunks) > 4
    clients, servers = end_to_end.clients_and_servers(40)
    path = tmp_path / "mix.pcap"
    synth.write_capture(path, 12_000, clients, servers, seed=3, flows=300)
    batches = list(pcap.read_batches(str(path), batch_size=5_000))
    for stateful in (True, False):
        fused, pieces = run_both(engine, batches, stateful)
        assert_same(fused, pieces)
        assert fused["summary"]["verdicts"]["deny"] and fused["summary"]["verdicts"]["allow"]
    # a limit far below the 300 conversations per kind: evictions in every block
    fused, pieces = run_both(engine, batches, True, max_connections=97)
    assert_same(fused, pieces)
    assert fused["summary"]["connections"]["evicted"] > 1000
    assert fused["summary"]["reasons"]["rule"] and fused["summary"]["reasons"]["implicit-deny"]


V4 = ipaddress.IPv4Address
WEB, CLIENT = V4("10.0.1.10"), V4("203.0.113.7")


def _tcp(src: V4, dst: V4, sport: int, dport: int, flags: int, seconds: float) -> Packet:
    return Packet(
        ts_ns=int(seconds * 1e9),
        src=src,
        dst=dst,
        protocol=6,
        sport=sport,
        dport=dport,
        tcp_flags=flags,
        wire_len=60,
    )


def test_a_connection_shortened_inside_a_block_is_judged_again(twin_mode: str) -> None:
    """Before the block the connection is alive for 600 s, so the fused pass guesses that its
    later packets need no rule lookup; a FIN early in the block cuts that to 30 s, and a reply
    40 s later must be judged by the rules (here: denied, the web server may not send)."""
    policy = Policy(
        groups={
            "g": SecurityGroup("g", (Rule("in", "g", 1, "ingress", protocol=6, ports=((80, 80),)),))
        },
        instances={"web": Instance("web", (WEB,), ("g",))},
    )
    first = [_tcp(CLIENT, WEB, 40000, 80, TCP_SYN, 0.0)]
    block = [
        _tcp(WEB, CLIENT, 80, 40000, TCP_SYN | TCP_ACK, 0.5),
        _tcp(CLIENT, WEB, 40000, 80, TCP_FIN | TCP_ACK, 1.0),
        _tcp(WEB, CLIENT, 80, 40000, TCP_ACK, 41.0),
        _tcp(CLIENT, WEB, 40000, 80, TCP_ACK, 42.0),
    ]
    oracle = reference.StatefulReference(policy)
    expected = [(v.verdict, v.reason) for v in map(oracle.process, first + block)]
    assert expected[3] == ("deny", "implicit-deny") and expected[4] == ("allow", "rule")
    engine = Engine(policy)
    batches = [PacketBatch.from_packets(first), PacketBatch.from_packets(block)]
    fused, pieces = run_both(engine, batches, stateful=True)
    assert_same(fused, pieces)
    got = [
        (VERDICT_NAMES[v], REASON_NAMES[r])
        for v, r in zip(fused["columns"]["verdict"], fused["columns"]["reason"], strict=True)
    ]
    assert got == expected


def test_the_default_path_is_fused(twin_mode: str) -> None:
    engine = Engine(
        Policy(
            groups={"g": SecurityGroup("g", (Rule("in", "g", 1, "ingress"),))},
            instances={"web": Instance("web", (WEB,), ("g",))},
        )
    )
    run = Classification(engine)
    assert run.fused
    result = run.classify_batch(PacketBatch.from_packets([_tcp(CLIENT, WEB, 1, 80, TCP_SYN, 0)]))
    assert VERDICT_NAMES[int(result.verdict[0])] == "allow" and int(result.created[0]) == 1
    kind = type(engine.fused_policy()).__module__.rsplit(".", 1)[-1]
    assert kind == ("_fused_py" if twin_mode == "python" else "_fused")


def test_an_engine_pickles_after_a_fused_run(twin_mode: str) -> None:
    """The scale-out sends engines to workers: the fused pass's C pointers stay behind."""
    import pickle

    policy = Policy(
        groups={"g": SecurityGroup("g", (Rule("in", "g", 1, "ingress"),))},
        instances={"web": Instance("web", (WEB,), ("g",))},
    )
    engine = Engine(policy)
    batch = PacketBatch.from_packets([_tcp(CLIENT, WEB, 1, 80, TCP_SYN, 0)])
    first = Classification(engine).classify_batch(batch)
    copy = pickle.loads(pickle.dumps(engine))
    again = Classification(copy).classify_batch(PacketBatch.from_packets([batch.packet(0)]))
    assert list(again.verdict) == list(first.verdict) and list(again.rule) == list(first.rule)


def _time_lines(engine: Engine, batches: list[PacketBatch], stateful: bool) -> list[Any]:
    """(width, low, counts) of the run's time line, its own buckets (not the summary's
    coarser ones), fused and unfused."""
    lines = []
    for fused in (True, False):
        run = Classification(engine, stateful=stateful, fused=fused)
        for batch in batches:
            run.classify_batch(PacketBatch(**{k: v.copy() for k, v in batch.columns().items()}))
        line = run.stats.timeline
        lines.append((line.width_ns, line.low, line.counts.tolist()))
    return lines


def test_the_time_line_counted_by_runs_equals_the_pieces(twin_mode: str) -> None:
    """The fused pass counts the time line by runs of consecutive packets in one bucket: times
    that go back and forth across buckets, before 1970 and at the ends of the int64 range
    land in the buckets the unfused count puts them in."""
    policy = Policy(
        groups={"g": SecurityGroup("g", (Rule("in", "g", 1, "ingress", protocol=6),))},
        instances={"web": Instance("web", (WEB,), ("g",))},
    )
    engine = Engine(policy)

    def batch_at(times: list[int]) -> PacketBatch:
        batch = PacketBatch.from_packets(
            [_tcp(CLIENT, WEB, 40000 + k, 80 + k % 2, TCP_SYN, 0) for k in range(len(times))]
        )
        batch.ts_ns[:] = times
        return batch

    near = [5_000_000_000, 5_000_000_001, 5_000_000_999, 1_000_000_000, 5_000_000_000, 1_500]
    near += [-3_000_500, -1, 0, 999, 1_000, -1_001, 1_000_000_000, -1_000, -999]
    # 1 µs buckets: each time next to a bucket edge, on one side and then the other
    edges = [5_000, 4_999, 5_000, 5_999, 6_000, 4_000, 3_999, -1, 0, -1_000, -1_001, 999, 1_000]
    far = [-(2**63), -(2**63) + 1, 2**63 - 1_000_001, 2**63 - 2, 2**63 - 1, 0, 2**63 - 1]
    cases = ([batch_at(near[:7]), batch_at(near[7:])], [batch_at(edges)], [batch_at(far)])
    for batches in cases:
        for stateful in (True, False):
            fused, pieces = _time_lines(engine, batches, stateful)
            assert fused == pieces
            assert sum(map(sum, fused[2])) == sum(map(len, batches))
    assert _time_lines(engine, cases[1], False)[0][0] == 1_000


def test_the_tag_bytes_follow_the_flow_table(tmp_path: Path, twin_mode: str) -> None:
    """The tracker's tag bytes (what the compiled probes walk) say, slot by slot, whether the
    slot is used and the top bits of its key's hash, after creations, evictions and growth."""
    from classifier import pcap
    from classifier.engine import _conntrack_py

    engine = Engine(load_policy_data(end_to_end.build_policy_data(20), "synthetic"))
    clients, servers = end_to_end.clients_and_servers(20)
    path = tmp_path / "mix.pcap"
    synth.write_capture(path, 6_000, clients, servers, seed=5, flows=400)
    for limit in (DEFAULT_MAX_CONNECTIONS, 150):
        run = Classification(engine, stateful=True, max_connections=limit)
        for batch in pcap.read_batches(str(path), batch_size=1_500):
            run.classify_batch(batch)
        assert run.tracker is not None
        core = run.tracker.core
        expected = [
            _conntrack_py._flow_tag(_conntrack_py._hash(*(int(w) for w in flow["key"])))
            if flow["used"]
            else 0
            for flow in core.flows
        ]
        assert list(core.flow_tags) == expected
        assert core.flow_count == sum(1 for tag in expected if tag)


def test_the_owner_filter_never_hides_an_owned_address(twin_mode: str) -> None:
    """The compiled pass asks a bit filter of the owned addresses before the owner table: with
    thousands of owned addresses (IPv4 and IPv6) many remote ones share a bit with one, and
    every packet still gets the owners the unfused pieces find."""
    rng = np.random.default_rng(11)
    owned_v4 = [V4(int(x)) for x in rng.choice(2**32 - 2, size=2_400, replace=False) + 1]
    owned_v6 = [ipaddress.IPv6Address(int(x) << 64 | 7) for x in range(1, 401)]
    rules = (Rule("in", "g", 1, "ingress"), Rule("out", "g", 2, "egress", action="deny"))
    policy = Policy(
        groups={"g": SecurityGroup("g", rules)},
        instances={
            f"vm{k}": Instance(f"vm{k}", tuple(owned_v4[40 * k : 40 * k + 40]), ("g",))
            for k in range(60)
        }
        | {
            f"v6vm{k}": Instance(f"v6vm{k}", tuple(owned_v6[40 * k : 40 * k + 40]), ("g",))
            for k in range(10)
        },
    )
    engine = Engine(policy)
    remote_v4 = [V4(int(x)) for x in rng.integers(1, 2**32 - 1, size=3_000)]
    remote_v6 = [ipaddress.IPv6Address(int(x) << 64 | 9) for x in rng.integers(1, 2**62, 600)]
    packets = []
    for k, remote in enumerate(remote_v4):
        local = owned_v4[k % len(owned_v4)]
        pair = (remote, local) if k % 3 else (local, remote)
        packets.append(_tcp(*pair, 1024 + k, 80, TCP_SYN, k * 1e-3))
    for k, remote_6 in enumerate(remote_v6):
        v4_shaped = _tcp(V4(1), V4(2), 2048 + k, 443, TCP_SYN, 3 + k * 1e-3)
        local_6 = owned_v6[k % len(owned_v6)]
        packets.append(dataclasses.replace(v4_shaped, ip_version=6, src=remote_6, dst=local_6))
    packets += [_tcp(remote_v4[k], remote_v4[k + 1], 5, 6, TCP_SYN, 4) for k in range(200)]
    batches = [PacketBatch.from_packets(packets[k : k + 1_500]) for k in range(0, 3_800, 1_500)]
    for stateful in (True, False):
        fused, pieces = run_both(engine, batches, stateful)
        assert_same(fused, pieces)
    instance = fused["columns"]["instance"]
    assert (instance >= 0).sum() == len(packets) - 200  # only the remote pairs are unmanaged
