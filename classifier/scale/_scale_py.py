"""Pure-Python twin of `classifier.scale._scale` (numpy, the same groups bit for bit).

Read `_scale.pyx` for what the groups are; this file computes the same hash with numpy's
wrapping uint64 arithmetic and the same stable order.
"""

from __future__ import annotations

import numpy as np

from classifier.codes import (
    ICMP_ERROR_TYPES,
    L4_ICMP,
    L4_INNER,
    PROTO_ICMP,
    PROTO_ICMPV6,
    VERDICT_ALLOW,
    VERDICT_DENY,
)

NO_GROUP = 0xFFFF


def _mix(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, in place."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


def _address(column: np.ndarray) -> np.ndarray:
    words = np.ascontiguousarray(column).view(np.uint64).reshape(-1, 2)
    high = _mix(words[:, 1].copy())
    high ^= words[:, 0]
    return _mix(high)


def state_groups(
    verdict: np.ndarray,
    ip_version: np.ndarray,
    protocol: np.ndarray,
    l4: np.ndarray,
    icmp_type: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    inner_src: np.ndarray,
    inner_dst: np.ndarray,
    groups: int,
    group: np.ndarray,
    order: np.ndarray,
    bounds: np.ndarray,
) -> int:
    judged = (verdict == VERDICT_ALLOW) | (verdict == VERDICT_DENY)
    v4, v6 = ip_version == 4, ip_version == 6
    quoting = (
        ((l4 & L4_ICMP) != 0)
        & ((l4 & L4_INNER) != 0)
        & (
            (v4 & (protocol == PROTO_ICMP) & np.isin(icmp_type, sorted(ICMP_ERROR_TYPES[4])))
            | (v6 & (protocol == PROTO_ICMPV6) & np.isin(icmp_type, sorted(ICMP_ERROR_TYPES[6])))
        )
    )
    h = _address(src) + _address(dst)
    rows = np.flatnonzero(quoting)
    if len(rows):
        h[rows] = _address(inner_src[rows]) + _address(inner_dst[rows])
    g = (_mix(h) % np.uint64(groups)).astype(np.uint16)
    group[...] = np.where(judged, g, NO_GROUP)
    grouped = np.flatnonzero(judged)
    sorted_rows = grouped[np.argsort(g[grouped], kind="stable")]
    order[: len(sorted_rows)] = sorted_rows
    bounds[...] = np.concatenate(([0], np.cumsum(np.bincount(g[grouped], minlength=groups))))
    return len(sorted_rows)
