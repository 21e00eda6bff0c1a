"""The summary's `timeline`: buckets add up to the verdicts, the bounds hold, merging is exact."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.engine import Classification, Engine
from classifier.engine.timeline import OUTPUT_BUCKETS, Timeline
from classifier.policy import load_policy
from tests.conftest import EXAMPLES, SAMPLE_PCAPS

VERDICTS = ("allow", "deny", "unmanaged", "not-ip", "malformed")
SPANS = (0, 1, 999, 1_000, 19_999, 20_000, 20_001, 119_000, 10**6, 10**9, 86_400 * 10**9, 10**17)


@st.composite
def records(draw: st.DrawFn) -> list[tuple[int, int]]:
    """(timestamp, verdict) pairs over a span of any scale, sub-microsecond to years."""
    base = draw(st.integers(0, 2 * 10**18))
    span = draw(st.sampled_from(SPANS) | st.integers(0, 10**12))
    n = draw(st.integers(1, 60))
    offsets = draw(st.lists(st.integers(0, span), min_size=n, max_size=n))
    if draw(st.booleans()):  # the extremes present: the span is exactly `span`
        offsets[0], offsets[-1] = 0, span
    verdicts = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    return [(base + o, v) for o, v in zip(offsets, verdicts, strict=True)]


def feed(timeline: Timeline, pairs: list[tuple[int, int]], cuts: list[int]) -> None:
    """Add `pairs` in batches split at `cuts`."""
    bounds = [0, *sorted(c % (len(pairs) + 1) for c in cuts), len(pairs)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        chunk = pairs[a:b]
        timeline.add(
            np.array([t for t, _ in chunk], np.int64), np.array([v for _, v in chunk], np.uint8)
        )


def check_contract(document: dict[str, Any], pairs: list[tuple[int, int]]) -> None:
    width, start, buckets = document["bucket_ns"], document["start_ns"], document["buckets"]
    first, last = min(t for t, _ in pairs), max(t for t, _ in pairs)
    assert isinstance(width, int) and width > 0 and isinstance(start, int)
    micros = width // 1000
    assert width % 1000 == 0 and micros & (micros - 1) == 0, "a power of two of microseconds"
    assert start % width == 0
    assert start <= first < start + width, "the first bucket holds the first timestamp"
    assert start + (len(buckets) - 1) * width <= last < start + len(buckets) * width
    assert len(buckets) <= OUTPUT_BUCKETS
    if last - first >= 20_000:
        assert len(buckets) >= 20
    if width > 1000:
        assert len(buckets) >= 60  # the smallest width: half of it gave more than 120
    assert all(list(bucket) == list(VERDICTS) for bucket in buckets)
    expected: Counter[tuple[int, str]] = Counter(
        ((t - start) // width, VERDICTS[v]) for t, v in pairs
    )
    got = Counter({(i, name): n for i, b in enumerate(buckets) for name, n in b.items() if n})
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(
    pairs=records(),
    cuts=st.lists(st.integers(0, 100), max_size=4),
    capacity=st.sampled_from((120, 128, 4096)),
)
def test_buckets_add_up_and_bounds_hold(
    pairs: list[tuple[int, int]], cuts: list[int], capacity: int
) -> None:
    timeline = Timeline(capacity)
    feed(timeline, pairs, cuts)
    check_contract(timeline.summary(), pairs)


@settings(max_examples=300, deadline=None)
@given(
    left=records(),
    right=records(),
    shift=st.integers(-(10**12), 10**12),
    cuts=st.lists(st.integers(0, 100), max_size=3),
    capacity=st.sampled_from((120, 200, 4096)),
)
def test_merge_equals_one_timeline_over_the_concatenation(
    left: list[tuple[int, int]],
    right: list[tuple[int, int]],
    shift: int,
    cuts: list[int],
    capacity: int,
) -> None:
    right = [(max(0, t + shift), v) for t, v in right]  # overlapping, apart, or far apart
    a, b, whole = Timeline(capacity), Timeline(capacity), Timeline(capacity)
    feed(a, left, cuts)
    feed(b, right, cuts[::-1])
    feed(whole, right + left, [])  # another order and another split: the same state
    b_copy = Timeline(capacity)
    feed(b_copy, right, [])
    a.merge(b)
    b_copy.merge(Timeline(capacity))  # merging an empty timeline changes nothing
    state = (a.width_ns, a.low, a.first_ns, a.last_ns)
    assert state == (whole.width_ns, whole.low, whole.first_ns, whole.last_ns)
    assert np.array_equal(a.counts, whole.counts)
    assert a.summary() == whole.summary()
    check_contract(a.summary(), left + right)
    empty = Timeline(capacity)
    empty.merge(b_copy)  # into an empty one: a copy
    assert empty.summary() == b.summary()


def test_no_record_and_one_record() -> None:
    timeline = Timeline()
    assert timeline.summary() == {"bucket_ns": 1000, "start_ns": None, "buckets": []}
    timeline.add(np.zeros(0, np.int64), np.zeros(0, np.uint8))
    assert timeline.summary()["buckets"] == []
    timeline.add(np.array([1_764_320_400_050_000_123]), np.array([1], np.uint8))
    document = timeline.summary()
    assert document["bucket_ns"] == 1000 and document["start_ns"] == 1_764_320_400_050_000_000
    assert document["buckets"] == [
        {"allow": 0, "deny": 1, "unmanaged": 0, "not-ip": 0, "malformed": 0}
    ]


def test_sub_microsecond_span_is_one_or_two_buckets() -> None:
    timeline = Timeline()
    timeline.add(np.array([10_999, 10_000, 10_500]), np.array([0, 0, 2], np.uint8))
    assert len(timeline.summary()["buckets"]) == 1
    timeline.add(np.array([11_000]), np.array([4], np.uint8))  # crosses a microsecond boundary
    document = timeline.summary()
    assert document["start_ns"] == 10_000 and len(document["buckets"]) == 2


def test_summary_timeline_of_the_samples_adds_up_to_the_verdicts(twin_mode: str) -> None:
    run = Classification(Engine(load_policy(EXAMPLES / "web-db.yaml")), batch_size=64)
    for _ in run.run(sorted(str(p) for p in SAMPLE_PCAPS.glob("*.pcap"))):
        pass
    summary = run.summary()
    timeline = summary["timeline"]
    totals = {name: sum(bucket[name] for bucket in timeline["buckets"]) for name in VERDICTS}
    assert totals == summary["verdicts"]
    start, width = timeline["start_ns"], timeline["bucket_ns"]
    assert start <= summary["time"]["first_ns"] < start + width
    assert summary["time"]["last_ns"] < start + len(timeline["buckets"]) * width
    assert 60 <= len(timeline["buckets"]) <= 120  # six hours of traffic
