"""murmur3's 64-bit finaliser, the one mixing step of the compiled hashes (tuple names, flow
slots, scale-out lanes); its pure twin is `classifier.engine.hashing.fmix64`."""

from libc.stdint cimport uint64_t


cdef inline uint64_t fmix64(uint64_t x) noexcept nogil:
    """A bijection of 64-bit words whose every output bit depends on every input bit."""
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCDULL
    x ^= x >> 33
    x *= 0xC4CEB9FE1A85EC53ULL
    x ^= x >> 33
    return x
