"""The scale-out's one kernel: the rows of a batch sorted into groups of state keys.

`state_groups` puts every row that the rules judged (verdict allow or deny) into a group: a
symmetric 64-bit hash of the two addresses its connection-state key is made of, modulo
`groups`. An ICMP error whose quoted header was captured is keyed by that header's source
and destination (the `related` check reads that connection); every other row by its own
source and destination. So both directions of a connection and the errors quoting it share
a group. Then a stable counting sort: `order` lists the grouped rows group by group, each in
row order, and `bounds[g]:bounds[g + 1]` is group g's share. Two nogil passes over the batch.

The hash reads each 16-byte address as two native 64-bit words a, b and takes
f(f(b) ^ a), f being murmur3's 64-bit finaliser; the pair's hash is f(h(x) + h(y)). The pure
twin `_scale_py` computes the same with numpy (a cluster may mix workers of both twins: they
must agree on every group).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memcpy

from classifier.engine._hashing cimport fmix64
from classifier._codes cimport (
    L4_ICMP,
    L4_INNER,
    PROTO_ICMP,
    PROTO_ICMPV6,
    VERDICT_ALLOW,
    VERDICT_DENY,
)

cdef uint16_t NO_GROUP = 0xFFFF


cdef inline uint64_t _address(const uint8_t* p) noexcept nogil:
    cdef uint64_t a, b
    memcpy(&a, p, 8)
    memcpy(&b, p + 8, 8)
    return fmix64(fmix64(b) ^ a)


cdef inline bint _quoting(uint8_t version, uint8_t protocol, uint8_t l4, uint8_t t) noexcept nogil:
    if not (l4 & L4_ICMP) or not (l4 & L4_INNER):
        return False
    if version == 4:
        return protocol == PROTO_ICMP and (t == 3 or t == 4 or t == 5 or t == 11 or t == 12)
    return version == 6 and protocol == PROTO_ICMPV6 and 1 <= t <= 4


def state_groups(
    const uint8_t[::1] verdict,
    const uint8_t[::1] ip_version,
    const uint8_t[::1] protocol,
    const uint8_t[::1] l4,
    const uint8_t[::1] icmp_type,
    const uint8_t[:, ::1] src,
    const uint8_t[:, ::1] dst,
    const uint8_t[:, ::1] inner_src,
    const uint8_t[:, ::1] inner_dst,
    Py_ssize_t groups,
    uint16_t[::1] group,
    int32_t[::1] order,
    int64_t[::1] bounds,
):
    """Fill `group` (per row, 0xFFFF: none), `order` and `bounds` (groups + 1 entries);
    returns how many rows are grouped."""
    cdef Py_ssize_t n = verdict.shape[0], i, g, total = 0
    cdef uint64_t h
    with nogil:
        for g in range(groups + 1):
            bounds[g] = 0
        for i in range(n):
            if verdict[i] != VERDICT_ALLOW and verdict[i] != VERDICT_DENY:
                group[i] = NO_GROUP
                continue
            if _quoting(ip_version[i], protocol[i], l4[i], icmp_type[i]):
                h = _address(&inner_src[i, 0]) + _address(&inner_dst[i, 0])
            else:
                h = _address(&src[i, 0]) + _address(&dst[i, 0])
            group[i] = <uint16_t>(fmix64(h) % <uint64_t>groups)
            bounds[group[i] + 1] += 1
        for g in range(groups):
            bounds[g + 1] += bounds[g]
        total = bounds[groups]
        # scatter, stable: bounds[g] runs from group g's start to its end, then is put back
        for i in range(n):
            if group[i] != NO_GROUP:
                order[bounds[group[i]]] = <int32_t>i
                bounds[group[i]] += 1
        for g in range(groups, 0, -1):
            bounds[g] = bounds[g - 1]
        bounds[0] = 0
    return total
