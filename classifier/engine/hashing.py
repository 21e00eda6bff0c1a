"""murmur3's 64-bit finaliser in Python: the twin of `classifier/engine/_hashing.pxd`."""

from __future__ import annotations

MASK64 = (1 << 64) - 1


def fmix64(x: int) -> int:
    """A bijection of 64-bit words whose every output bit depends on every input bit."""
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    x ^= x >> 33
    return x
