"""Records per time bucket and verdict: the summary's `timeline` (report contract, section 1).

Design note
-----------
A `Timeline` counts (timestamp, verdict) pairs, as read from the capture, in buckets of width
W = 2**k microseconds (k >= 0) aligned to multiples of W: bucket b covers [b*W, (b+1)*W)
nanoseconds since the epoch. The state is W, `low` (the bucket index of `counts[0]`) and
`counts`, an int64 array [buckets, 5] (one column per verdict code) that covers exactly the
buckets from the first timestamp's to the last one's.

The span is not known in advance. When a batch widens it past `capacity` buckets, W doubles and
buckets 2j and 2j+1 merge into j (exact, since buckets are aligned to multiples of W), until the
span fits. So the invariant is:

    W is the smallest power of two of microseconds for which the buckets of the first and the
    last timestamp are at most `capacity` apart (counting both),

and the state is a function of the multiset of (timestamp, verdict) pairs alone: any order, any
split into batches, gives the same W, `low` and `counts`.

Merging (parallel workers, then one summary): `a.merge(b)` coarsens both to the larger W, widens
W further until the union of the two spans fits, and adds the counts bucket by bucket. By the
invariant the result equals one timeline fed all the records of both, exactly, in either order
(merge is commutative and associative); the capacities must be equal.

`summary()` writes the smallest width W' = 2**j µs >= W giving at most `OUTPUT_BUCKETS` (120)
buckets, with start S = a multiple of W'. Since capacity >= 120, that W' is the smallest power of
two of microseconds giving at most 120 buckets at all, so when W' > 1 µs, W'/2 gave 121 or more,
the span exceeds 119·W'/2 and there are at least 60 buckets; when W' = 1 µs a span of 20 µs or
more gives at least 21. Both bounds of the contract hold (at most 120; at least 20 from 20 µs).

Cost: one floor division and one `np.bincount` per batch, a re-binning of at most `capacity`
rows when W grows. Memory: capacity × 5 × 8 bytes (160 KiB at the default 4,096).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from classifier.codes import VERDICT_NAMES

MICROSECOND_NS = 1_000
OUTPUT_BUCKETS = 120
DEFAULT_CAPACITY = 4096
N_VERDICTS = len(VERDICT_NAMES)


def _fits(first: int, last: int, width: int, limit: int) -> bool:
    return last // width - first // width + 1 <= limit


def _smallest_width(first: int, last: int, width: int, limit: int) -> int:
    """The smallest width `width`·2**j (j >= 0) putting `first` and `last` at most `limit`
    buckets apart."""
    while not _fits(first, last, width, limit):
        width *= 2
    return width


def _rebin(
    counts: np.ndarray, low: int, width: int, new_width: int, new_low: int, size: int
) -> np.ndarray:
    """`counts` (buckets from `low`, of `width`) re-binned into `size` buckets of `new_width`
    (a multiple of `width` by a power of two) from bucket `new_low`."""
    out = np.zeros((size, N_VERDICTS), np.int64)
    if len(counts):
        shift = (new_width // width).bit_length() - 1
        target = (np.arange(low, low + len(counts), dtype=np.int64) >> shift) - new_low
        np.add.at(out, target, counts)
    return out


class Timeline:
    """Records per verdict in aligned power-of-two-microsecond buckets; mergeable exactly."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        if capacity < OUTPUT_BUCKETS:
            raise ValueError(f"capacity {capacity} is below {OUTPUT_BUCKETS}")
        self.capacity = capacity
        self.width_ns = MICROSECOND_NS
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.low = 0
        self.counts = np.zeros((0, N_VERDICTS), np.int64)

    def _reframe(self, first: int, last: int, width: int) -> None:
        """Cover [first, last] with buckets of `width` (>= the current one), keeping the counts."""
        low = first // width
        size = last // width - low + 1
        if width == self.width_ns and low == self.low and size == len(self.counts):
            return
        self.counts = _rebin(self.counts, self.low, self.width_ns, width, low, size)
        self.width_ns, self.low, self.first_ns, self.last_ns = width, low, first, last

    def _widen(self, first: int, last: int, width: int) -> None:
        if self.first_ns is not None and self.last_ns is not None:
            first, last = min(first, self.first_ns), max(last, self.last_ns)
        width = _smallest_width(first, last, max(width, self.width_ns), self.capacity)
        self._reframe(first, last, width)
        self.first_ns, self.last_ns = first, last

    def add(self, ts_ns: np.ndarray, verdict: np.ndarray) -> None:
        """Count one batch: `ts_ns` (int64 nanoseconds) and `verdict` (codes 0..4) per record."""
        if len(ts_ns) == 0:
            return
        ts = np.asarray(ts_ns, dtype=np.int64)
        self.frame(int(ts.min()), int(ts.max()))
        self.count(ts, verdict)

    def frame(self, first: int, last: int) -> tuple[int, int]:
        """Widen to cover [first, last] (a batch's span, before its records are counted).
        Returns (`low`, k) with the width 2**k µs: record at t counts in row
        ((t // 1000) >> k) - low, which is t // width - low (floor division throughout)."""
        self._widen(first, last, self.width_ns)
        return self.low, (self.width_ns // MICROSECOND_NS).bit_length() - 1

    def count(self, ts_ns: np.ndarray, verdict: np.ndarray) -> None:
        """Count records of a span already framed (`frame`)."""
        flat = np.floor_divide(np.asarray(ts_ns, dtype=np.int64), self.width_ns)  # in place
        flat -= self.low
        flat *= N_VERDICTS
        flat += verdict
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)

    def merge(self, other: Timeline) -> None:
        """Add `other`'s counts: afterwards this timeline equals one fed both sets of records."""
        if other.capacity != self.capacity:
            raise ValueError("timelines of different capacities do not merge exactly")
        if other.first_ns is None or other.last_ns is None:
            return
        self._widen(other.first_ns, other.last_ns, other.width_ns)
        size = len(self.counts)
        self.counts += _rebin(
            other.counts, other.low, other.width_ns, self.width_ns, self.low, size
        )

    def summary(self) -> dict[str, Any]:
        """The `timeline` document: `bucket_ns`, `start_ns`, `buckets` (one dict per bucket)."""
        if self.first_ns is None or self.last_ns is None:
            return {"bucket_ns": self.width_ns, "start_ns": None, "buckets": []}
        width = _smallest_width(self.first_ns, self.last_ns, self.width_ns, OUTPUT_BUCKETS)
        low = self.first_ns // width
        size = self.last_ns // width - low + 1
        counts = _rebin(self.counts, self.low, self.width_ns, width, low, size)
        return {
            "bucket_ns": width,
            "start_ns": low * width,
            "buckets": [dict(zip(VERDICT_NAMES, row, strict=True)) for row in counts.tolist()],
        }
