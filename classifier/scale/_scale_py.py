"""Pure-Python twin of `classifier.scale._scale` (numpy, the same lanes bit for bit).

Read `_scale.pyx` for what the lanes are; this file computes the same hash with numpy's
wrapping uint64 arithmetic.
"""

from __future__ import annotations

import numpy as np

from classifier.codes import ICMP_ERROR_TYPES, L4_ICMP, L4_INNER, PROTO_ICMP, PROTO_ICMPV6


def _mix(x: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, in place."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


def _words(column: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(column).view(np.uint64).reshape(-1, 2)


def _lanes(x: np.ndarray, y: np.ndarray, lanes: int) -> np.ndarray:
    x_words, y_words = _words(x), _words(y)
    high = _mix(x_words[:, 1] + y_words[:, 1])
    high ^= x_words[:, 0] + y_words[:, 0]
    return (_mix(high) % np.uint64(lanes)).astype(np.uint16)


def row_lanes(
    ip_version: np.ndarray,
    protocol: np.ndarray,
    l4: np.ndarray,
    icmp_type: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    inner_src: np.ndarray,
    inner_dst: np.ndarray,
    lanes: int,
    lane: np.ndarray,
) -> None:
    n = len(lane)
    if not 1 <= lanes <= 65536:
        raise ValueError("lanes must be 1..65536")
    addresses = (src, dst, inner_src, inner_dst)
    if any(len(column) != n for column in (ip_version, protocol, l4, icmp_type, *addresses)):
        raise ValueError("every column needs one entry per row")
    if any(a.shape[1:] != (16,) for a in addresses):
        raise ValueError("every address column needs 16 bytes per row")
    v4, v6 = ip_version == 4, ip_version == 6
    quoting = (
        ((l4 & L4_ICMP) != 0)
        & ((l4 & L4_INNER) != 0)
        & (
            (v4 & (protocol == PROTO_ICMP) & np.isin(icmp_type, sorted(ICMP_ERROR_TYPES[4])))
            | (v6 & (protocol == PROTO_ICMPV6) & np.isin(icmp_type, sorted(ICMP_ERROR_TYPES[6])))
        )
    )
    lane[...] = _lanes(src, dst, lanes)
    rows = np.flatnonzero(quoting)
    if len(rows):
        lane[rows] = _lanes(inner_src[rows], inner_dst[rows], lanes)
