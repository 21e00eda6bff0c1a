"""The compiled security-group engine equals the reference matcher, packet by packet."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import reference
from classifier.codes import DIRECTION_NAMES, REASON_NAMES, VERDICT_NAMES
from classifier.engine import Classification, Engine
from classifier.packets import Packet, PacketBatch
from classifier.policy import AddressGroup, AddressRange, Instance, Policy, Rule, SecurityGroup
from tests import strategies

Row = tuple[str, str, str | None, str | None, str | None]


def engine_rows(engine: Engine, packets: list[Packet]) -> list[Row]:
    result = engine.classify(PacketBatch.from_packets(packets))
    return [
        (
            VERDICT_NAMES[int(result.verdict[i])],
            REASON_NAMES[int(result.reason[i])],
            engine.instance_ids[result.instance[i]] if result.instance[i] >= 0 else None,
            DIRECTION_NAMES[int(result.direction[i])] or None,
            engine.rule_ids[result.rule[i]] if result.rule[i] >= 0 else None,
        )
        for i in range(len(packets))
    ]


def reference_row(verdict: reference.Verdict) -> Row:
    return (
        verdict.verdict,
        verdict.reason,
        verdict.instance_id,
        verdict.direction,
        verdict.rule_id,
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_stateless_engine_equals_reference(twin_mode: str, data: st.DataObject) -> None:
    policy = data.draw(strategies.policies())
    packets = data.draw(st.lists(strategies.packets(policy), min_size=1, max_size=20))
    engine = Engine(policy)
    expected = [reference_row(reference.evaluate(policy, packet)) for packet in packets]
    assert engine_rows(engine, packets) == expected


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=strategies.policy_and_sequences())
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "pieces"])
def test_stateful_pipeline_equals_reference(
    twin_mode: str, fused: bool, scenario: tuple[Policy, list[Packet]]
) -> None:
    """Both paths of the pipeline: the fused pass (the default) and the pieces it fuses."""
    policy, packets = scenario
    engine = Engine(policy)
    oracle = reference.StatefulReference(policy)
    expected = [reference_row(oracle.process(packet)) for packet in packets]
    run = Classification(engine, stateful=True, batch_size=7, fused=fused)
    got: list[Row] = []
    batch = PacketBatch.from_packets(packets)
    for start in range(0, len(packets), 7):  # several batches: state must carry across them
        result = run.classify_batch(_copy(batch, start, start + 7))
        for i in range(len(result.batch)):
            got.append(
                (
                    VERDICT_NAMES[int(result.verdict[i])],
                    REASON_NAMES[int(result.reason[i])],
                    engine.instance_ids[result.instance[i]] if result.instance[i] >= 0 else None,
                    DIRECTION_NAMES[int(result.direction[i])] or None,
                    engine.rule_ids[result.rule[i]] if result.rule[i] >= 0 else None,
                )
            )
    assert got == expected
    counts = run.summary()["verdicts"]
    assert sum(counts.values()) == len(packets)


def _copy(batch: PacketBatch, start: int, stop: int) -> PacketBatch:
    part = batch.slice(start, stop)
    return PacketBatch(**{name: column.copy() for name, column in part.columns().items()})


# --- hand-made corners ------------------------------------------------------------------------

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
WEB, DB, OUTSIDE = V4("10.0.1.10"), V4("10.0.2.20"), V4("203.0.113.7")


def _policy(*rules: Rule, sequences: dict[str, tuple[str, ...]] | None = None) -> Policy:
    groups: dict[str, list[Rule]] = {}
    for rule in rules:
        groups.setdefault(rule.group_id, []).append(rule)
    sequences = sequences or {"web": ("g",), "db": ()}
    ips = {"web": WEB, "db": DB}
    return Policy(
        groups={gid: SecurityGroup(gid, tuple(rs)) for gid, rs in groups.items()}
        | {"empty": SecurityGroup("empty")},
        address_groups={
            "office": AddressGroup("office", 4, (AddressRange(V4("192.0.2.10"), V4("192.0.2.20")),))
        },
        instances={name: Instance(name, (ips[name],), seq) for name, seq in sequences.items()},
    )


def _tcp(src: V4, dst: V4, dport: int | None) -> Packet:
    return Packet(
        src=src, dst=dst, protocol=6, sport=40000 if dport is not None else None, dport=dport
    )


def test_address_group_range_is_exact() -> None:
    rule = Rule(
        "r1", "g", 1, "ingress", protocol=6, ports=((22, 22),), remote_address_group_id="office"
    )
    engine = Engine(_policy(rule))
    rows = engine_rows(
        engine,
        [_tcp(V4(f"192.0.2.{last}"), WEB, 22) for last in (9, 10, 15, 20, 21)],
    )
    assert [row[0] for row in rows] == ["deny", "allow", "allow", "allow", "deny"]


def test_port_boundaries_and_unknown_ports() -> None:
    rule = Rule("r1", "g", 1, "ingress", protocol=6, ports=((1, 1), (80, 90), (65535, 65535)))
    open_rule = Rule("r2", "g", 2, "ingress", protocol=6, priority=2, action="deny")
    engine = Engine(_policy(rule, open_rule))
    rows = engine_rows(engine, [_tcp(OUTSIDE, WEB, p) for p in (1, 2, 79, 80, 90, 91, 65535, None)])
    assert [row[4] for row in rows] == ["r1", "r2", "r2", "r1", "r1", "r2", "r1", "r2"]


def test_instance_without_groups_denies_both_ways() -> None:
    engine = Engine(_policy(Rule("r1", "g", 1, "ingress"), sequences={"web": ("g",), "db": ()}))
    rows = engine_rows(engine, [_tcp(OUTSIDE, DB, 80), _tcp(DB, OUTSIDE, 80)])
    assert rows == [
        ("deny", "implicit-deny", "db", "ingress", None),
        ("deny", "implicit-deny", "db", "egress", None),
    ]


def test_many_instances_share_one_table() -> None:
    instances = {
        f"vm{i}": Instance(f"vm{i}", (V4(f"10.1.{i // 250}.{i % 250 + 1}"),), ("g",))
        for i in range(300)
    }
    policy = Policy(
        groups={
            "g": SecurityGroup(
                "g", (Rule("r1", "g", 1, "ingress", protocol=6, ports=((443, 443),)),)
            )
        },
        instances=instances,
    )
    engine = Engine(policy)
    assert len(engine.tables) == 4  # (ingress, egress) x (IPv4, IPv6), shared by all 300
    owners = engine.instance_of(PacketBatch.from_packets([_tcp(OUTSIDE, V4("10.1.1.5"), 443)]).dst)
    assert engine.instance_ids[int(owners[0])] == "vm254"


@pytest.mark.parametrize("sparse_slots", [1 << 16, 64], ids=["eighth-full", "half-full"])
def test_owner_table_load_and_lookups(monkeypatch: pytest.MonkeyPatch, sparse_slots: int) -> None:
    """At most an eighth full up to SPARSE_OWNER_SLOTS slots, half full past it; either way
    every local address finds its instance and no other address finds one."""
    from classifier.engine import build

    monkeypatch.setattr(build, "SPARSE_OWNER_SLOTS", sparse_slots)
    instances = {
        f"vm{i}": Instance(
            f"vm{i}", (V4(f"10.2.{i // 200}.{i % 200 + 1}"), V6(f"2001:db8:2::{i + 1:x}")), ("g",)
        )
        for i in range(300)
    }
    policy = Policy(
        groups={"g": SecurityGroup("g", (Rule("r1", "g", 1, "ingress"),))}, instances=instances
    )
    engine = Engine(policy)
    slots, used = len(engine.compiled.slot_owner), int((engine.compiled.slot_owner >= 0).sum())
    assert used == 600
    if sparse_slots > 8 * used:
        assert slots >= 8 * used
    else:
        assert 2 * used <= slots < 8 * used
    local = [address for instance in instances.values() for address in instance.ips]
    remote: list[V4 | V6] = [V4(f"10.3.{i // 250}.{i % 250}") for i in range(1000)]
    remote += [V6(f"2001:db8:3::{i:x}") for i in range(1000)]
    packets = [
        Packet(ip_version=a.version, src=a, dst=a, protocol=17, sport=1, dport=2)
        for a in local + remote
    ]
    owners = engine.instance_of(PacketBatch.from_packets(packets).dst)
    assert [engine.instance_ids[int(o)] for o in owners[: len(local)]] == [
        f"vm{i}" for i in range(300) for _ in range(2)
    ]
    assert np.all(owners[len(local) :] == -1)


@pytest.mark.parametrize("size", [0, 1, 5])
def test_batch_sizes(size: int) -> None:
    engine = Engine(_policy(Rule("r1", "g", 1, "ingress")))
    result = engine.classify(PacketBatch.from_packets([_tcp(OUTSIDE, WEB, 80)] * size))
    assert np.all(result.verdict == 0) and len(result.verdict) == size


def test_ipv6_address_that_looks_ipv4_mapped_is_not_the_ipv4_instance() -> None:
    engine = Engine(_policy(Rule("r1", "g", 1, "ingress")))
    mapped = ipaddress.IPv6Address("::ffff:10.0.1.10")
    packet = Packet(
        ip_version=6,
        src=ipaddress.IPv6Address("2001:db8::1"),
        dst=mapped,
        protocol=17,
        sport=1,
        dport=2,
    )
    assert engine_rows(engine, [packet]) == [("unmanaged", "", None, None, None)]


@pytest.mark.parametrize("budget", [1_000_000, -1], ids=["sequence-mode", "group-mode"])
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_many_small_chunks_and_both_modes_equal_the_reference(
    twin_mode: str, budget: int, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables spread over many shared matchers (tags, per-chunk lookups), and per-group tables
    looked up in sequence order (group mode), change no verdict."""
    import classifier.engine.build as build_module
    from classifier._twins import Twin

    monkeypatch.setattr(build_module, "CHUNK_ROWS", 3)
    monkeypatch.setattr(build_module, "SEQUENCE_ROWS_BUDGET", budget)
    policy = data.draw(strategies.policies())
    packets = data.draw(st.lists(strategies.packets(policy), min_size=1, max_size=20))
    engine = Engine(policy)
    assert engine.mode == ("sequence" if budget > 0 else "group")
    kernels = Twin("classifier.engine._engine").module()
    assert kernels.__name__.endswith("_py") == (twin_mode == "python")
    expected = [reference_row(reference.evaluate(policy, packet)) for packet in packets]
    assert engine_rows(engine, packets) == expected


def test_default_group_pattern_builds_in_linear_time() -> None:
    """Thousands of instances, each with a group of its own and a shared group that names
    itself as remote (the cloud's default): group mode keeps the build linear."""
    n = 3000
    shared = SecurityGroup(
        "default",
        (
            Rule("d1", "default", 1, "ingress", remote_group_id="default"),
            Rule("d2", "default", 2, "egress"),
        ),
    )
    own = {
        f"own{i}": SecurityGroup(
            f"own{i}", (Rule(f"o{i}", f"own{i}", 1, "ingress", protocol=6, ports=((22, 22),)),)
        )
        for i in range(n)
    }
    instances = {
        f"vm{i}": Instance(f"vm{i}", (V4(f"10.{i // 250}.{i % 250}.7"),), (f"own{i}", "default"))
        for i in range(n)
    }
    policy = Policy(groups={"default": shared} | own, instances=instances)
    import time

    start = time.perf_counter()
    engine = Engine(policy)
    assert engine.mode == "group"
    assert time.perf_counter() - start < 60  # a guard against the quadratic build, not a benchmark
    rows = engine_rows(
        engine, [_tcp(V4("10.0.1.7"), V4("10.0.2.7"), 80), _tcp(OUTSIDE, V4("10.0.2.7"), 22)]
    )
    assert rows[0][4] == "d1" and rows[1][4] == "o2"  # 10.0.2.7 is vm2


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rule_hits_count_every_deciding_side(data: st.DataObject) -> None:
    """Per-rule hits in the summary: each evaluated side's deciding rule, as the reference says."""
    from collections import Counter

    policy = data.draw(strategies.policies())
    packets = data.draw(st.lists(strategies.packets(policy), min_size=1, max_size=20))
    run = Classification(Engine(policy), stateful=False)
    run.classify_batch(PacketBatch.from_packets(packets))
    expected: Counter[str] = Counter()
    for packet in packets:
        for side in reference.evaluate(policy, packet).sides:
            if side.rule is not None:
                expected[side.rule.id] += 1
    got = {rule["id"]: rule["packets"] for rule in run.summary()["rules"] if rule["packets"]}
    assert got == dict(expected)
