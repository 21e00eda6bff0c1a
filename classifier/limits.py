"""The bounds of the tables that grow with the traffic (robustness contract, section 4).

With these defaults a `classify` run on a policy of up to 100 instances and 1,000 rules stays
below 1 GiB of peak resident memory whatever the capture (benchmarks/RESULTS.md: the SYN
flood). A plain module with no imports, so that the command line's help can state them
without loading numpy.
"""

from __future__ import annotations

# connections tracked at once (`classify --max-connections`, 1..MAX_CONNECTIONS): 64-byte
# flow slots at a load of 1/4 to 1/2 plus the eviction heaps, about 300 MB at the default
DEFAULT_MAX_CONNECTIONS = 1_000_000
MAX_CONNECTIONS = 10**9
# first fragments remembered at once (30 s each; a first fragment beyond is not remembered):
# 128-byte slots, at most 64 MiB
MAX_FRAGMENTS = 131_072
# distinct denied tuples counted at once (beyond it the least-hit half is dropped and the
# summary's `denied_tuples_exact` is false)
DENIED_TUPLES_LIMIT = 2_000_000
