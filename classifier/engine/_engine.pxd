# Per-packet helpers of classifier/engine/_engine.pyx, shared with the fused pass (_fused.pyx):
# the owner table's probe, the port field of the rules, the denied-tuple hash.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from classifier.engine._hashing cimport _word, fmix64
from classifier._codes cimport (
    ICMP_CODE_UNKNOWN,
    ICMP_PORT_BASE,
    L4_ICMP,
    L4_ICMP_NO_CODE,
    L4_PORTS,
    PORT_UNKNOWN,
    PROTO_ICMP,
    PROTO_ICMPV6,
    code_carries_ports,
)


cdef inline uint64_t address_slot_hash(uint64_t hi, uint64_t lo, uint64_t version) noexcept nogil:
    cdef uint64_t h = hi * 0x9E3779B97F4A7C15ULL ^ lo * 0xC2B2AE3D27D4EB4FULL ^ version
    h ^= h >> 29
    h *= 0xBF58476D1CE4E5B9ULL
    h ^= h >> 32
    return h


cdef inline int32_t owner_of(
    uint64_t hi,
    uint64_t lo,
    uint8_t version,
    const uint64_t* slot_hi,
    const uint64_t* slot_lo,
    const uint8_t* slot_version,
    const int32_t* slot_owner,
    uint64_t mask,
) noexcept nogil:
    """The instance owning an address of family `version` (4 or 6), given as its two
    big-endian words (`_word` of bytes 0 and 8), else -1: linear probing from the address's
    slot until an empty slot (the table is at most half full)."""
    cdef uint64_t slot
    if version != 4 and version != 6:
        return -1
    slot = address_slot_hash(hi, lo, version) & mask
    while slot_owner[slot] >= 0:
        if slot_hi[slot] == hi and slot_lo[slot] == lo and slot_version[slot] == version:
            return slot_owner[slot]
        slot = (slot + 1) & mask
    return -1


cdef inline uint32_t port_value(
    uint8_t protocol, uint8_t l4, uint16_t dport, uint8_t icmp_type, uint8_t icmp_code
) noexcept nogil:
    """The field the rules' port ranges are matched against (see the module docstring)."""
    if code_carries_ports(protocol) and (l4 & L4_PORTS):
        return dport
    if (protocol == PROTO_ICMP or protocol == PROTO_ICMPV6) and (l4 & L4_ICMP):
        # type*512 + code; 256 in the code's place when the code is unknown, which a
        # type-only rule's block [type*512, type*512+511] holds and no code equals
        # (both arms uint32: Cython would give the conditional icmp_code's uint8 type)
        return ICMP_PORT_BASE + <uint32_t>icmp_type * 512 + (
            <uint32_t>ICMP_CODE_UNKNOWN if l4 & L4_ICMP_NO_CODE else <uint32_t>icmp_code)
    return PORT_UNKNOWN


cdef inline uint64_t _le_word(const uint8_t* p) noexcept nogil:
    """8 bytes, little-endian, as an integer (what numpy's '<u8' view of the same bytes reads)."""
    return ((<uint64_t>p[7] << 56) | (<uint64_t>p[6] << 48) | (<uint64_t>p[5] << 40)
            | (<uint64_t>p[4] << 32) | (<uint64_t>p[3] << 24) | (<uint64_t>p[2] << 16)
            | (<uint64_t>p[1] << 8) | <uint64_t>p[0])


cdef inline uint64_t _tuple_hash(
    const uint8_t* src, const uint8_t* dst, uint64_t rest
) noexcept nogil:
    """Each word through a finaliser (a bijection: tuples differing in a word differ there as
    random 64-bit values do), the five summed with odd weights (independent: no chain of
    multiplies), and a last finaliser. (Products of the raw words alone would keep an IPv6
    address's last byte, the top byte of its little-endian word, in the top bits only, and
    merge every pair of tuples that differ just there into 256 names.)"""
    return fmix64(fmix64(_le_word(src)) + fmix64(_le_word(src + 8)) * 0x9E3779B97F4A7C15ULL
                  + fmix64(_le_word(dst)) * 0xC2B2AE3D27D4EB4FULL
                  + fmix64(_le_word(dst + 8)) * 0x165667B19E3779F9ULL
                  + fmix64(rest) * 0xD6E8FEB86659FD93ULL)


cdef inline uint64_t tuple_key(
    const uint8_t* src, const uint8_t* dst, uint8_t version, uint8_t protocol, uint8_t l4,
    uint16_t dport, uint8_t icmp_type, uint8_t icmp_code
) noexcept nogil:
    """The 64-bit name of a denied (source, destination, version, protocol, port) tuple; an
    ICMP packet's "port" is its type and code (type * 256 + code), so the top-denied tuples
    tell an echo request from a port unreachable."""
    cdef uint64_t port = 1 << 20  # no port (not TCP/UDP/SCTP/ICMP, or not known)
    if l4 & L4_PORTS:
        port = dport
    elif l4 & L4_ICMP:
        port = <uint64_t>icmp_type * 256 + icmp_code
    return _tuple_hash(src, dst, port | (<uint64_t>protocol << 40) | (<uint64_t>version << 48))


cdef inline void tuples_reset(
    const uint64_t* slot_key, int64_t* slot_index, uint64_t mask, const uint64_t* out_key,
    Py_ssize_t distinct
) noexcept nogil:
    """Empty the slots of the `distinct` keys again (the table is all -1 once more, ready for
    the next batch without a fill of the whole table): each key's slot is the first of its
    probe sequence that is in use and holds the key."""
    cdef Py_ssize_t d
    cdef uint64_t slot
    for d in range(distinct):
        slot = out_key[d] & mask
        while slot_index[slot] < 0 or slot_key[slot] != out_key[d]:
            slot = (slot + 1) & mask
        slot_index[slot] = -1
