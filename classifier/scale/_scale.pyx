"""The scale-out's one kernel: the state lane of every row of a batch.

`row_lanes` gives every row a lane: a symmetric 64-bit hash of the two addresses its
connection-state key is made of, modulo `lanes`. An ICMP error whose quoted header was
captured is keyed by that header's source and destination (the `related` check reads that
connection); every other row by its own source and destination. So both directions of a
connection and the errors quoting it share a lane (scale.md section 3). Rows that no rule
judges (not IP, malformed, unmanaged) get a lane too: they take part in no state, so any
lane is right for them. One nogil pass over the batch.

The hash reads each 16-byte address as two native 64-bit words; the pair's words are added
(wrapping: the sum does not depend on the order of the two addresses), and the lane is
f(f(high) ^ low) modulo `lanes`, f being murmur3's 64-bit finaliser. Pairs whose sums are
equal share a lane, which only matters for balance. The pure twin `_scale_py` computes the
same with numpy (a cluster may mix workers of both twins: they must agree on every lane).
"""

from libc.stdint cimport uint8_t, uint16_t, uint64_t
from libc.string cimport memcpy

from classifier.engine._hashing cimport fmix64
from classifier._codes cimport L4_ICMP, L4_INNER, PROTO_ICMP, PROTO_ICMPV6


cdef inline bint _quoting(uint8_t version, uint8_t protocol, uint8_t l4, uint8_t t) noexcept nogil:
    if not (l4 & L4_ICMP) or not (l4 & L4_INNER):
        return False
    if version == 4:
        return protocol == PROTO_ICMP and (t == 3 or t == 4 or t == 5 or t == 11 or t == 12)
    return version == 6 and protocol == PROTO_ICMPV6 and 1 <= t <= 4


cdef inline uint16_t _lane(const uint8_t* x, const uint8_t* y, uint64_t lanes) noexcept nogil:
    cdef uint64_t x_low, x_high, y_low, y_high
    memcpy(&x_low, x, 8)
    memcpy(&x_high, x + 8, 8)
    memcpy(&y_low, y, 8)
    memcpy(&y_high, y + 8, 8)
    return <uint16_t>(fmix64(fmix64(x_high + y_high) ^ (x_low + y_low)) % lanes)


def row_lanes(
    const uint8_t[::1] ip_version,
    const uint8_t[::1] protocol,
    const uint8_t[::1] l4,
    const uint8_t[::1] icmp_type,
    const uint8_t[:, ::1] src,
    const uint8_t[:, ::1] dst,
    const uint8_t[:, ::1] inner_src,
    const uint8_t[:, ::1] inner_dst,
    Py_ssize_t lanes,
    uint16_t[::1] lane,
) -> None:
    """Fill `lane` with each row's lane, 0 <= lane < `lanes` (1..65536)."""
    cdef Py_ssize_t n = lane.shape[0], i
    if not 1 <= lanes <= 65536:
        raise ValueError("lanes must be 1..65536")
    if (ip_version.shape[0] != n or protocol.shape[0] != n or l4.shape[0] != n
            or icmp_type.shape[0] != n or src.shape[0] != n or dst.shape[0] != n
            or inner_src.shape[0] != n or inner_dst.shape[0] != n):
        raise ValueError("every column needs one entry per row")
    if (src.shape[1] != 16 or dst.shape[1] != 16 or inner_src.shape[1] != 16
            or inner_dst.shape[1] != 16):
        raise ValueError("every address column needs 16 bytes per row")
    with nogil:
        for i in range(n):
            if _quoting(ip_version[i], protocol[i], l4[i], icmp_type[i]):
                lane[i] = _lane(&inner_src[i, 0], &inner_dst[i, 0], <uint64_t>lanes)
            else:
                lane[i] = _lane(&src[i, 0], &dst[i, 0], <uint64_t>lanes)
