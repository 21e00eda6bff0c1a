"""Statistics: exact counting of denied tuples, per-rule hits, conservation."""

from __future__ import annotations

import ipaddress
import pickle
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.engine.stats import DeniedCounter, _most_common_first
from classifier.packets import Packet, PacketBatch

ADDRESSES = [ipaddress.ip_address(a) for a in ("10.0.0.1", "10.0.0.2", "192.0.2.1")]
ADDRESSES6 = [ipaddress.ip_address(a) for a in ("2001:db8::1", "::ffff:10.0.0.1")]


@st.composite
def denied_packets(draw: st.DrawFn) -> Packet:
    version = draw(st.sampled_from((4, 6)))
    pool = ADDRESSES if version == 4 else ADDRESSES6
    port = draw(st.one_of(st.none(), st.sampled_from((22, 80, 65535))))
    if draw(st.integers(0, 3)) == 0:  # ICMP: the type and code tell the tuples apart
        icmp_type = draw(st.one_of(st.none(), st.sampled_from((0, 3, 8))))
        return Packet(
            ip_version=version,
            src=draw(st.sampled_from(pool)),
            dst=draw(st.sampled_from(pool)),
            protocol=1 if version == 4 else 58,
            icmp_type=icmp_type,
            icmp_code=None if icmp_type is None else draw(st.sampled_from((0, 3))),
        )
    return Packet(
        ip_version=version,
        src=draw(st.sampled_from(pool)),
        dst=draw(st.sampled_from(pool)),
        protocol=draw(st.sampled_from((6, 17))),
        sport=None if port is None else 1000,
        dport=port,
    )


def key(p: Packet) -> tuple[object, ...]:
    return (
        str(p.src),
        str(p.dst),
        p.ip_version,
        p.protocol,
        -1 if p.dport is None else p.dport,
        -1 if p.icmp_type is None else p.icmp_type,
        -1 if p.icmp_code is None else p.icmp_code,
    )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(denied_packets(), min_size=1, max_size=40), min_size=1, max_size=4)
)
def test_denied_counter_is_exact(twin_mode: str, batches: list[list[Packet]]) -> None:
    counter = DeniedCounter()
    expected: Counter[tuple[object, ...]] = Counter()
    for packets in batches:
        batch = PacketBatch.from_packets(packets)
        counter.add(batch, np.arange(len(packets)))
        expected.update(key(p) for p in packets)
    # the map names every entry, also after the resizes of a growing run
    for entry, tuple_hash in enumerate(counter.keys.tolist()):
        slot = tuple_hash & (len(counter._map_index) - 1)
        while counter._map_key[slot] != tuple_hash:
            slot = (slot + 1) & (len(counter._map_index) - 1)
        assert counter._map_index[slot] == entry
    rows, counts = counter.most_common(1000)
    got = {}
    for (src, dst, version, protocol, dport, icmp_type, icmp_code), count in zip(
        rows.tolist(), counts.tolist(), strict=True
    ):
        raw_src, raw_dst = src.ljust(16, b"\0"), dst.ljust(16, b"\0")
        a = ipaddress.IPv4Address(raw_src[12:]) if version == 4 else ipaddress.IPv6Address(raw_src)
        b = ipaddress.IPv4Address(raw_dst[12:]) if version == 4 else ipaddress.IPv6Address(raw_dst)
        got[(str(a), str(b), version, protocol, dport, icmp_type, icmp_code)] = count
    assert got == dict(expected)
    assert len(counter) == len(expected)
    assert list(counts) == sorted(counts, reverse=True)
    assert not counter.pruned


def test_denied_counter_travels_folded_and_goes_on_counting(twin_mode: str) -> None:
    """A pickled counter (a lane's, sent to the driver) arrives with only its entries in use,
    without its hash tables, counts as the original did, and counts on after (the map
    rebuilt when it next counts)."""
    packets = [
        Packet(src=ADDRESSES[i % 3], dst=ADDRESSES[1], protocol=6, sport=1, dport=port)
        for i, port in enumerate(range(1, 301))
    ]
    counter = DeniedCounter()
    for chunk in (packets[:100], packets[:150]):
        counter.add(PacketBatch.from_packets(chunk), np.arange(len(chunk)))
    assert len(counter._slot_index) > 0 and len(counter._map_index) > 0
    assert len(counter._keys) > len(counter) == 150  # room to grow, which does not travel
    arrived = pickle.loads(pickle.dumps(counter))
    assert len(arrived._slot_index) == len(arrived._map_index) == 0
    assert len(arrived._keys) == len(arrived._rows) == 150
    for a, b in zip(arrived.most_common(500), counter.most_common(500), strict=True):
        assert np.array_equal(a, b)
    chunk = packets[100:]
    for c in (counter, arrived):
        c.add(PacketBatch.from_packets(chunk), np.arange(len(chunk)))
    rows, counts = arrived.most_common(500)
    assert len(arrived) == 300 and int(counts.sum()) == 100 + 150 + 200
    for a, b in zip((rows, counts), counter.most_common(500), strict=True):
        assert np.array_equal(a, b)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, (1 << 64) - 1), st.integers(1, 6)),  # few counts: many ties
        max_size=60,
        unique_by=lambda entry: entry[0],  # a counter's keys are distinct
    ),
    st.integers(0, 70),
)
def test_the_top_of_the_counter_is_the_whole_sort_cut(
    entries: list[tuple[int, int]], n: int
) -> None:
    keys = np.array([key for key, _ in entries], np.uint64)
    counts = np.array([count for _, count in entries], np.int64)
    expected = np.lexsort((keys, -counts))[:n]
    assert _most_common_first(keys, counts, n).tolist() == expected.tolist()


def test_denied_counter_prunes_the_long_tail_and_says_so() -> None:
    packets = [
        Packet(src=ADDRESSES[0], dst=ADDRESSES[1], protocol=6, sport=1, dport=port)
        for port in range(1, 401)
    ]
    heavy = [Packet(src=ADDRESSES[2], dst=ADDRESSES[1], protocol=6, sport=1, dport=22)] * 50
    counter = DeniedCounter(limit=100)
    for chunk in (packets[:200], heavy, packets[200:]):
        counter.add(PacketBatch.from_packets(chunk), np.arange(len(chunk)))
    rows, counts = counter.most_common(1)
    assert counts[0] == 50 and rows[0]["dport"] == 22
    assert counter.pruned and len(counter) <= 100


def test_denied_tuples_differing_in_the_last_address_byte_stay_apart(twin_mode: str) -> None:
    # The tuple's 64-bit name once kept an IPv6 address's last byte (the top byte of its
    # little-endian word) in the top bits of a product: 4,096 such tuples got 256 names.
    packets = [
        Packet(
            ip_version=6,
            src=ipaddress.ip_address(f"2001:db8:ff::{a:x}"),
            dst=ipaddress.ip_address(f"2001:db8:1::{b:x}"),
            protocol=6,
            sport=1000,
            dport=8080,
        )
        for a in range(64)
        for b in range(64)
    ]
    counter = DeniedCounter()
    counter.add(PacketBatch.from_packets(packets), np.arange(len(packets)))
    rows, counts = counter.most_common(len(packets))
    assert len(counter) == len(packets) and set(counts.tolist()) == {1}
    assert len({(r["src"], r["dst"]) for r in rows}) == len(packets)
