"""The bit-level helpers of the compiled hashes (tuple names, flow slots, owner slots,
scale-out lanes): murmur3's 64-bit finaliser (its pure twin is
`classifier.engine.hashing.fmix64`) and the big-endian word of an address half."""

from libc.stdint cimport uint8_t, uint64_t


cdef inline uint64_t fmix64(uint64_t x) noexcept nogil:
    """A bijection of 64-bit words whose every output bit depends on every input bit."""
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCDULL
    x ^= x >> 33
    x *= 0xC4CEB9FE1A85EC53ULL
    x ^= x >> 33
    return x


cdef inline uint64_t _word(const uint8_t* p) noexcept nogil:
    """8 bytes, big-endian, as an integer (so that word order is address order). Written as
    one expression of shifts, which gcc compiles to a load and a byte swap; a loop over the
    bytes it keeps as 8 loads and 14 shifts and ors."""
    return ((<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40)
            | (<uint64_t>p[3] << 32) | (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16)
            | (<uint64_t>p[6] << 8) | <uint64_t>p[7])
