"""Connection tracking (both twins) against the plain reference (`StatefulReference`).

A tiny test-only stateless classifier (`reference.evaluate` per row) fills the arrays the
engine would; the tracker then has to produce exactly what the reference does on the same
packets, whatever the batch boundaries.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import codes as ct
from classifier._twins import Twin
from classifier.codes import FRAGMENT_FIRST, FRAGMENT_LATER, TCP_ACK, TCP_FIN, TCP_SYN
from classifier.engine.conntrack import APPLY_ARRAYS, ConnectionTracker
from classifier.packets import Packet, PacketBatch, QuotedHeader
from classifier.policy import Policy
from classifier.reference import StatefulReference, evaluate, state_side
from tests.strategies import T0, policy_and_sequences
from tests.test_reference import OUT, VM1, outbound_only, pkt, reply

S = 1_000_000_000
Row = tuple[str, str, str | None, str | None, str | None, bool, bool]


def stateless_arrays(policy: Policy, batch: PacketBatch) -> list[np.ndarray]:
    """What the engine gives `apply`: the reference's stateless verdicts as code arrays."""
    n = len(batch)
    instances = {iid: k for k, iid in enumerate(policy.instances)}
    rules = {r.id: k for k, r in enumerate(policy.rules())}
    arrays = [np.zeros(n, dtype) for dtype in APPLY_ARRAYS.values()]
    verdict, reason, rule, side_i, side_d, new_i, new_d, _, _ = arrays
    for i in range(n):
        packet = batch.packet(i)
        v = evaluate(policy, packet)
        verdict[i] = ct.VERDICT_NAMES.index(v.verdict)
        reason[i] = ct.REASON_NAMES.index(v.reason)
        rule[i] = rules[v.rule.id] if v.rule is not None else ct.NO_RULE
        side_i[i] = instances[v.instance_id] if v.instance_id is not None else ct.NO_INSTANCE
        side_d[i] = ct.DIRECTION_NAMES.index(v.direction) if v.direction else ct.DIRECTION_NONE
        new_i[i], new_d[i] = ct.NO_INSTANCE, ct.DIRECTION_NONE
        if v.verdict in ("allow", "deny"):
            iid, direction = state_side(policy, packet)
            new_i[i], new_d[i] = instances[iid], ct.DIRECTION_NAMES.index(direction)
    return arrays


def tracked(
    policy: Policy, packets: list[Packet], batch_size: int | list[int] = 1000, **kw: Any
) -> list[Row]:
    """Run the packets through a ConnectionTracker in batches; rows as the reference gives."""
    tracker = ConnectionTracker(**kw)
    if isinstance(batch_size, int):
        batch_size = [batch_size] * (len(packets) // batch_size)
    instance_ids = list(policy.instances)
    rules = list(policy.rules())
    rows: list[Row] = []
    starts = np.cumsum([0, *batch_size])
    chunks = [packets[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
    for chunk in [*chunks, packets[starts[-1] :]]:  # empty batches included
        batch = PacketBatch.from_packets(chunk)
        tracker.join_fragments(batch)
        arrays = stateless_arrays(policy, batch)
        tracker.apply(batch, *arrays)
        verdict, reason, rule, side_i, side_d, _, _, created, midstream = arrays
        for i in range(len(chunk)):
            has_side = side_i[i] != ct.NO_INSTANCE
            rows.append(
                (
                    ct.VERDICT_NAMES[verdict[i]],
                    ct.REASON_NAMES[reason[i]],
                    instance_ids[side_i[i]] if has_side else None,
                    ct.DIRECTION_NAMES[side_d[i]] if has_side else None,
                    rules[rule[i]].id if rule[i] != ct.NO_RULE else None,
                    bool(created[i]),
                    bool(midstream[i]),
                )
            )
    assert len(rows) == len(packets)
    return rows


def expected(
    policy: Policy, packets: list[Packet], max_connections: int | None = None
) -> list[Row]:
    return [
        (v.verdict, v.reason, v.instance_id, v.direction, v.rule_id, v.created, v.midstream)
        for v in StatefulReference(policy, max_connections=max_connections).run(packets)
    ]


def test_twin_mode_reaches_the_tracker(twin_mode: str) -> None:
    name = ConnectionTracker().implementation
    assert name == ("_conntrack" if twin_mode == "compiled" else "_conntrack_py")


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=policy_and_sequences(max_size=40), cuts=st.lists(st.integers(0, 40), max_size=4))
def test_tracker_equals_the_reference(
    twin_mode: str, case: tuple[Policy, list[Packet]], cuts: list[int]
) -> None:
    policy, packets = case
    want = expected(policy, packets)
    assert tracked(policy, packets) == want
    # the same stream cut into other batches (empty ones included) gives the same answers
    sizes = sorted(set(cuts))
    sizes = [b - a for a, b in zip([0, *sizes], sizes, strict=False)]
    assert tracked(policy, packets, sizes) == want
    assert tracked(policy, packets, 1) == want


BOUNDARY_CASES = {
    "tcp 600 s": [pkt(VM1, OUT, tcp_flags=TCP_SYN), pkt(OUT, VM1, t=600, sport=80, dport=40000)],
    "tcp 600 s + 1 ns": [
        pkt(VM1, OUT, tcp_flags=TCP_SYN),
        dataclasses.replace(pkt(OUT, VM1, sport=80, dport=40000), ts_ns=600 * S + 1),
    ],
    "fin then 30 s": [
        pkt(VM1, OUT, tcp_flags=TCP_SYN),
        pkt(OUT, VM1, t=1, sport=80, dport=40000, tcp_flags=TCP_FIN | TCP_ACK),
        pkt(OUT, VM1, t=31, sport=80, dport=40000),
        dataclasses.replace(pkt(OUT, VM1, sport=80, dport=40000), ts_ns=61 * S + 1),
    ],
    "udp both ways": [
        pkt(VM1, OUT, 17, sport=5, dport=53),
        pkt(OUT, VM1, 17, t=30, sport=53, dport=5),
        pkt(OUT, VM1, 17, t=210, sport=53, dport=5),
        dataclasses.replace(pkt(OUT, VM1, 17, sport=53, dport=5), ts_ns=390 * S + 1),
    ],
    "gre one way": [pkt(VM1, OUT, 47), pkt(VM1, OUT, 47, t=30), pkt(OUT, VM1, 47, t=60.5)],
    "echo by id": [
        pkt(VM1, OUT, 1, icmp_type=8, icmp_code=0, icmp_id=3),
        pkt(OUT, VM1, 1, t=1, icmp_type=0, icmp_code=0, icmp_id=4),
        pkt(OUT, VM1, 1, t=2, icmp_type=0, icmp_code=0, icmp_id=3),
    ],
    "related, no refresh": [
        pkt(VM1, OUT, 17, sport=5, dport=53),
        pkt(
            "192.0.2.1",
            VM1,
            1,
            t=29,
            icmp_type=3,
            icmp_code=3,
            quoted=QuotedHeader(17, ipaddress.ip_address(VM1), ipaddress.ip_address(OUT), 5, 53),
        ),
        pkt(OUT, VM1, 17, t=31, sport=53, dport=5),
    ],
    "fragments": [
        pkt(OUT, "10.0.0.2", 6, sport=9, dport=80, fragment=FRAGMENT_FIRST, ip_id=5),
        pkt(OUT, "10.0.0.2", 6, t=30, fragment=FRAGMENT_LATER, ip_id=5, frag_offset=9),
        pkt(OUT, "10.0.0.2", 6, t=61, fragment=FRAGMENT_LATER, ip_id=5, frag_offset=9),
    ],
    "clock back": [
        pkt(VM1, OUT, 17, t=100, sport=5, dport=53),
        pkt(OUT, VM1, 17, t=0, sport=53, dport=5),
        pkt(OUT, VM1, 17, t=280, sport=53, dport=5),
    ],
}


@pytest.mark.parametrize("name", list(BOUNDARY_CASES))
def test_boundaries(twin_mode: str, name: str) -> None:
    packets = [
        dataclasses.replace(p, ts_ns=p.ts_ns + T0, index=i)
        for i, p in enumerate(BOUNDARY_CASES[name])
    ]
    want = expected(outbound_only(), packets)
    assert tracked(outbound_only(), packets) == want
    assert tracked(outbound_only(), packets, 1) == want


def test_boundary_answers_are_what_the_spec_says(twin_mode: str) -> None:
    reasons = {
        name: [row[1] for row in tracked(outbound_only(), packets)]
        for name, packets in BOUNDARY_CASES.items()
    }
    assert reasons["tcp 600 s"] == ["rule", "established"]
    assert reasons["tcp 600 s + 1 ns"] == ["rule", "implicit-deny"]
    assert reasons["fin then 30 s"] == ["rule", "established", "established", "implicit-deny"]
    assert reasons["udp both ways"] == ["rule", "established", "established", "implicit-deny"]
    assert reasons["gre one way"] == ["rule", "established", "implicit-deny"]
    assert reasons["echo by id"] == ["rule", "implicit-deny", "established"]
    assert reasons["related, no refresh"] == ["rule", "related", "implicit-deny"]
    assert reasons["fragments"] == ["rule", "established", "implicit-deny"]
    assert reasons["clock back"] == ["rule", "established", "established"]


def many_flows(count: int, t0: float = 0, port0: int = 1024) -> list[Packet]:
    return [
        pkt(VM1, OUT, 17, t=t0 + i * 1e-6, sport=port0 + i % 60000, dport=53 + i // 60000)
        for i in range(count)
    ]


def test_flow_table_grows_and_keeps_every_connection(twin_mode: str) -> None:
    count = 3000
    tracker = ConnectionTracker(capacity=16)
    policy = outbound_only()
    out = many_flows(count)
    back = [reply(p, 5) for p in out]
    rows_in: list[str] = []
    for chunk in (out[:100], out[100:], back):
        batch = PacketBatch.from_packets(chunk)
        tracker.join_fragments(batch)
        arrays = stateless_arrays(policy, batch)
        tracker.apply(batch, *arrays)
        if chunk is back:
            rows_in = [ct.REASON_NAMES[r] for r in arrays[1]]
    assert rows_in == ["established"] * count
    assert tracker.connections_created == count
    assert tracker.live_connections() == count
    assert tracker.capacity >= 2 * count and tracker.capacity & (tracker.capacity - 1) == 0


def test_expired_connections_are_reused_not_accumulated(twin_mode: str) -> None:
    tracker = ConnectionTracker(capacity=16)
    policy = outbound_only()
    capacities = []
    for round_ in range(6):
        flows = many_flows(500, t0=round_ * 100, port0=1024 + round_ * 500)
        batch = PacketBatch.from_packets(flows)
        arrays = stateless_arrays(policy, batch)
        tracker.apply(batch, *arrays)
        assert arrays[-2].sum() == 500  # all created
        capacities.append(tracker.capacity)
        assert tracker.live_connections() == 500  # the previous round expired (30 s one way)
    assert tracker.connections_created == 3000
    assert capacities[-1] == capacities[1]  # no growth once the expired slots are reused


def test_apply_checks_its_arrays() -> None:
    batch = PacketBatch.from_packets([pkt(VM1, OUT)])
    arrays = stateless_arrays(outbound_only(), batch)
    tracker = ConnectionTracker()
    with pytest.raises(TypeError, match="verdict"):
        wrong = [arrays[0].astype(np.int64), *arrays[1:]]
        tracker.apply(batch, *wrong)
    with pytest.raises(ValueError, match="created"):
        wrong = list(arrays)
        wrong[7] = np.zeros(2, np.int8)
        tracker.apply(batch, *wrong)
    batch.l4 = batch.l4.astype(np.int16)
    with pytest.raises(TypeError, match="l4"):
        tracker.join_fragments(batch)


def test_midstream_and_created_per_rule(twin_mode: str) -> None:
    policy = outbound_only()
    packets = [
        pkt(VM1, OUT, tcp_flags=TCP_SYN, sport=1),
        pkt(VM1, OUT, tcp_flags=TCP_ACK, sport=2),
        pkt(VM1, OUT, sport=3, tcp_flags=None),
        pkt("2001:db8::1", "2600::1", 17),
    ]
    rows = tracked(policy, packets)
    assert [(r[5], r[6]) for r in rows] == [
        (True, False),
        (True, True),
        (True, True),
        (True, False),
    ]
    assert [r[4] for r in rows] == ["out/1", "out/1", "out/1", "out/2"]


def test_twins_build_the_same_tables() -> None:
    """The twin mirrors the compiled core slot for slot: same hash, probing and layout."""
    compiled, twin = Twin("classifier.engine._conntrack").both()
    assert compiled.FLOW_DTYPE == twin.FLOW_DTYPE and compiled.FRAGMENT_DTYPE == twin.FRAGMENT_DTYPE
    policy = outbound_only()
    out = many_flows(200)
    fragments = [
        pkt(VM1, OUT, 17, t=1, sport=7, dport=9, fragment=FRAGMENT_FIRST, ip_id=k)
        for k in range(50)
    ] + [pkt(VM1, OUT, 17, t=2, fragment=FRAGMENT_LATER, ip_id=k, frag_offset=9) for k in range(60)]
    batches = [
        out[:50],
        out[50:],
        [reply(p, 20) for p in out[::3]],
        fragments,
        many_flows(100, 100),
    ]
    trackers = [compiled.Tracker(16), twin.Tracker(16)]
    public = [{n for n in dir(t) if not n.startswith("_")} for t in trackers]
    assert public[0] == public[1]
    results = []
    for tracker in trackers:
        answers = []
        for chunk in batches:
            batch = PacketBatch.from_packets(chunk)
            tracker.join_fragments(batch)
            arrays = stateless_arrays(policy, batch)
            tracker.apply(batch, *arrays)
            answers.append([batch.l4.copy(), batch.dport.copy(), *arrays])
        results.append(answers)
    for a, b in zip(*results, strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y)
    a, b = trackers
    assert np.array_equal(a.flows, b.flows) and np.array_equal(a.fragments, b.fragments)
    assert np.array_equal(a.flow_tags, b.flow_tags)
    assert (a.clock_ns, a.fragment_clock_ns, a.flow_count, a.frag_count) == (
        b.clock_ns,
        b.fragment_clock_ns,
        b.flow_count,
        b.frag_count,
    )
    # at 100 s: the 67 answered flows (180 s), and 66 new ones of the last batch (its 34 others
    # are answered flows again); the one-way flows of 0 s and the fragments' flow expired
    assert a.live_connections() == b.live_connections() == 133


# --- the connection limit (robustness contract, section 4) ------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    case=policy_and_sequences(max_size=40),
    limit=st.integers(1, 4),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_a_limited_tracker_equals_the_reference(
    twin_mode: str, case: tuple[Policy, list[Packet]], limit: int, cuts: list[int]
) -> None:
    """Tiny limits: evictions, expired connections dropped, forgotten ones judged anew."""
    policy, packets = case
    oracle = StatefulReference(policy, max_connections=limit)
    want = [
        (v.verdict, v.reason, v.instance_id, v.direction, v.rule_id, v.created, v.midstream)
        for v in oracle.run(packets)
    ]
    sizes = sorted(set(cuts))
    sizes = [b - a for a, b in zip([0, *sizes], sizes, strict=False)]
    for batch_size in (1000, sizes, 1):
        tracker_rows = tracked(policy, packets, batch_size, max_connections=limit)
        assert tracker_rows == want
    tracker = ConnectionTracker(max_connections=limit)
    batch = PacketBatch.from_packets(packets)
    tracker.join_fragments(batch)
    tracker.apply(batch, *stateless_arrays(policy, batch))
    assert tracker.evicted == oracle.evicted
    assert tracker.live_connections() <= limit


def test_eviction_takes_the_oldest_last_packet_then_the_first_created(twin_mode: str) -> None:
    policy = outbound_only()
    a, b, c, d = (pkt(VM1, OUT, 17, t=0, sport=1000 + k, dport=53) for k in range(4))
    packets = [
        a,  # t 0: created first
        dataclasses.replace(b, ts_ns=0),  # t 0
        dataclasses.replace(a, ts_ns=5 * S),  # a refreshed: b's last packet is the oldest
        dataclasses.replace(b, ts_ns=5 * S),  # b refreshed too: a tie, a was created first
        dataclasses.replace(c, ts_ns=6 * S),  # limit 2: evicts a
        dataclasses.replace(a, ts_ns=7 * S),  # a is new again (its rule allows): evicts b
        dataclasses.replace(b, ts_ns=8 * S),  # b too: evicts c
        dataclasses.replace(d, ts_ns=100 * S),  # a and b expired (30 s): dropped, uncounted
        dataclasses.replace(c, ts_ns=101 * S),  # c was forgotten: created again
    ]
    packets = [dataclasses.replace(p, ts_ns=p.ts_ns + T0, index=i) for i, p in enumerate(packets)]
    want = expected(policy, packets, max_connections=2)
    assert [row[1] for row in want] == ["rule", "rule", *["established"] * 2, *["rule"] * 5]
    assert [row[5] for row in want] == [True, True, False, False, *[True] * 5]
    for batch_size in (1000, 1, [3, 2, 4]):
        assert tracked(policy, packets, batch_size, max_connections=2) == want
    oracle = StatefulReference(policy, max_connections=2)
    oracle.run(packets)
    tracker = ConnectionTracker(max_connections=2)
    batch = PacketBatch.from_packets(packets)
    tracker.apply(batch, *stateless_arrays(policy, batch))
    assert tracker.evicted == oracle.evicted == 3
    assert tracker.max_connections == 2


def test_a_forgotten_connection_is_judged_by_the_rules(twin_mode: str) -> None:
    """vm1 opens two connections (limit 1): the reply of the first is denied by vm1's
    ingress (it allows nothing), since the second creation forgot it."""
    policy = outbound_only()
    first = pkt(VM1, OUT, tcp_flags=TCP_SYN, sport=1)
    second = pkt(VM1, OUT, t=1, tcp_flags=TCP_SYN, sport=2)
    packets = [first, second, reply(first, 2), reply(second, 3)]
    packets = [dataclasses.replace(p, ts_ns=p.ts_ns + T0, index=i) for i, p in enumerate(packets)]
    rows = tracked(policy, packets, max_connections=1)
    assert [row[1] for row in rows] == ["rule", "rule", "implicit-deny", "established"]
    assert rows == expected(policy, packets, max_connections=1)


def test_a_flood_keeps_the_table_bounded(twin_mode: str) -> None:
    limit = 300
    tracker = ConnectionTracker(capacity=16, max_connections=limit)
    policy = outbound_only()
    flows = many_flows(6000 if twin_mode == "compiled" else 1500)
    capacities = []
    for start in range(0, len(flows), 500):
        batch = PacketBatch.from_packets(flows[start : start + 500])
        arrays = stateless_arrays(policy, batch)
        tracker.apply(batch, *arrays)
        assert arrays[-2].sum() == len(batch)  # every packet creates a connection
        capacities.append(tracker.capacity)
        assert tracker.live_connections() == min(limit, start + len(batch))
    assert tracker.evicted == len(flows) - limit
    assert max(capacities) <= 4096  # bounded by the limit and one batch, not by the flood


def test_the_limit_is_checked() -> None:
    for bad in (0, 10**9 + 1):
        with pytest.raises(ValueError):
            ConnectionTracker(max_connections=bad)
    assert ConnectionTracker(max_connections=10**9).max_connections == 10**9


def test_twins_keep_the_same_tables_under_a_limit() -> None:
    compiled, twin = Twin("classifier.engine._conntrack").both()
    policy = outbound_only()
    out = many_flows(400)
    batches = [out[:150], [reply(p, 1) for p in out[:100:3]], out[150:], many_flows(50, 100)]
    trackers = [compiled.Tracker(16, 37), twin.Tracker(16, 37)]
    for tracker in trackers:
        for chunk in batches:
            batch = PacketBatch.from_packets(chunk)
            tracker.apply(batch, *stateless_arrays(policy, batch))
    a, b = trackers
    assert np.array_equal(a.flows, b.flows)
    assert (a.evicted, a.tracked, a.next_seq, a.flow_count) == (
        b.evicted,
        b.tracked,
        b.next_seq,
        b.flow_count,
    )
    assert a.evicted > 0


def test_first_fragments_are_bounded(twin_mode: str) -> None:
    """Past max_fragments, a first fragment is not remembered (its later fragments are
    judged without ports); expired ones make room again."""
    tracker = ConnectionTracker(max_fragments=2)
    firsts = [
        pkt(OUT, "10.0.0.2", 6, sport=9, dport=80, fragment=FRAGMENT_FIRST, ip_id=k)
        for k in range(3)
    ]
    laters = [
        pkt(OUT, "10.0.0.2", 6, t=1, fragment=FRAGMENT_LATER, ip_id=k, frag_offset=9)
        for k in range(3)
    ]
    batch = PacketBatch.from_packets(firsts + laters)
    tracker.join_fragments(batch)
    assert [int(batch.dport[i]) for i in range(3, 6)] == [80, 80, 0]
    assert tracker.fragments_dropped == 1
    again = PacketBatch.from_packets(
        [dataclasses.replace(firsts[2], ts_ns=40 * S), dataclasses.replace(laters[2], ts_ns=41 * S)]
    )
    tracker.join_fragments(again)
    assert int(again.dport[1]) == 80 and tracker.fragments_dropped == 1


def _mapping_of(address: int) -> dict[str, str]:
    """The /proc/self/smaps fields of the mapping holding `address`."""
    fields: dict[str, str] = {}
    found = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                low, high = (int(part, 16) for part in head.split("-"))
                if found:
                    break
                found = low <= address < high
                fields = {"range": line.strip()}
            elif found:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    return fields


def test_a_big_flow_table_sits_on_huge_pages_where_the_kernel_grants_them() -> None:
    """The flow table is probed at random: past 2 MiB it is a private mapping of its own,
    2 MiB aligned and asked for huge pages (a shared mapping, as Python's mmap makes by
    default, gets none), so a probe is not also a page walk (RESULTS.md, section 12)."""
    compiled, _ = Twin("classifier.engine._conntrack").both()
    tracker = compiled.Tracker()
    tracker.rehash(100_000, 0)  # room for 100,000 connections: megabytes of slots
    flows = tracker.flows
    assert flows.nbytes >= 4 << 20 and flows.ctypes.data % (2 << 20) == 0
    assert not flows.view(np.uint8).any() and flows.flags.writeable
    flows["last"][:] = 1  # the first touch: the kernel places the pages now
    mapping = _mapping_of(flows.ctypes.data)
    assert " rw-p " in mapping["range"], mapping["range"]  # private, not shared memory
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            mode = f.read()
    except OSError:
        pytest.skip("no transparent huge pages in this kernel")
    if "[never]" in mode:
        pytest.skip("transparent huge pages are off on this machine")
    # the kernel may be short of free 2 MiB blocks: some huge pages, not necessarily all
    assert int(mapping["AnonHugePages"].split()[0]) > 0, mapping
