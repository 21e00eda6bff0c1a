"""The compiled first-match structure: flat numpy arrays, and what they mean.

Design note
===========

What
----
A rule list (line order = priority) over F key fields compiles into F *interval maps*, G
*groups* of fields, and one packed *bit matrix*.  IPv4 uses F = 5 fields (src, dst, sport, dport,
proto) with uint32 keys; IPv6 uses F = 7 (src_hi64, src_lo64, dst_hi64, dst_lo64, sport, dport,
proto) with uint64 keys.

* Interval map of a field: the key space is cut at every rule boundary (`lo` and `hi + 1`) into
  elementary intervals; all keys of one interval match exactly the same rules of that field.
  Intervals with equal rule sets form one *equivalence class* (RFC's phase 0), and adjacent
  intervals of one class are merged.
* Search tree of a field: a static 16-ary tree over the interval starts (`tree`, levels root
  first).  A node holds 16 keys; the number of them <= key, minus one, is the child to take.
  A leaf node holds 16 interval starts followed by their 16 classes (one more adjacent cache
  line, instead of a separate class array and a dependent miss); padding keys are the key
  maximum and padding classes repeat the last interval's class.  The depth is fixed per
  field, the count is branch-free (two AVX2 compares for uint32 keys), so a lookup has no
  data-dependent branch: ClassBench addresses cluster, which made a bucketed binary search
  mispredict several times per field.
* Groups (RFC's phase 1): fields whose class counts are small are combined; a group's
  combination index is the mixed-radix number of its fields' classes (`STRIDE`), and `gtab`
  maps it to a row of the bit matrix (distinct rows are shared).  Typically src and dst stay
  alone and the port and protocol fields become one group, so a packet ANDs 2-3 rows, not 5.
* Bit matrix: row r is the bitset of the (expanded) rules matching the row's class or
  combination; bit b is rule b, in priority order.  Rows are packed: `summary[r]` has bit w for
  each non-zero 64-bit word w of the row (the aggregated bit vector of Baboescu and Varghese),
  and the non-zero words are stored in `words`, the ones of block s (words 64 s .. 64 s + 63)
  starting at `rank[r, s]`.  Word w = 64 s + b sits at rank[r, s] + popcount(summary[r, s]
  below bit b).
* A packet's first match: its class in each field, its row in each group; AND the groups'
  summary words to get the candidate words, visit them in increasing order, AND the groups'
  words; the first non-zero one gives the lowest set bit, the highest-priority rule matching
  every field.  `rule_of` maps the bit back to the caller's rule index.

Why this shape
--------------
Lookup cost depends on the number of groups and candidate words, not on the rule count, and
the structure is built by numpy sweeps in milliseconds (a 10k-rule set in 0.01-0.3 s, a
10-rule set in about a millisecond).  Per-field classes are few: for prefix fields at most
#distinct prefixes + 1, since the prefixes covering a point form a chain.  The summary skips
64 rules per zero bit, and specific fields (a /32, an exact port) leave a candidate or two.
Packing drops the zero words, 50-95 % of a ClassBench matrix, so the hot data of a 10k set
fits in the L2 cache.  Grouping is greedy under a memory budget (build._plan_groups).

Expanded rules
--------------
IPv4 ranges are native intervals: one bit per rule.  An IPv6 address range is split exactly into
at most three boxes over (hi64, lo64) (first partial hi word, full middle, last partial); a rule
becomes the product of its src and dst boxes (at most 9 bits, same priority, adjacent
positions), and `rule_of` maps every bit to its rule.  A protocol value/mask is evaluated for all
256 values (its own 256-key interval map), so any mask is exact.

Invariants
----------
* Per field: the leaf level's first NSTARTS keys strictly increase from 0 (`starts(f)`); keys
  >= start i and < start i + 1 (or >= the last start) lie in interval i.  Each upper level
  holds the first key of each node below; every level is padded with the key maximum to whole
  nodes, and LEVEL_LAST clamps a node index computed at a level (the maximum key counts
  padding); in the leaf the padding classes make a clamp unnecessary.
* Class values of a field (`classes(f)`) are < NCLASSES and differ between adjacent intervals.
* A group's combination index is below the product of its fields' class counts; its `gtab`
  entries are global rows of the bit matrix owned by that group.
* Bits at or above the number of expanded rules are zero in every row; `rule_of` is -1 there.
* Expanded rule order is priority order: bit r < bit s implies rule_of[r] <= rule_of[s].

Memory bound
------------
Rows: sum over groups of distinct classes/combinations (per field <= 2R + 1 classes, R the
expanded rules; a group's combination table <= 65536 entries).  Packed words <= rows * R / 64,
and in practice the non-zero words only; summary and rank add 12 bytes per row and 64 words.
Trees: about 16/15 of the interval count per field.  Grouping may grow the words to at most
8x (256 KB minimum, 24 MB maximum) of the ungrouped size.  The ClassBench 10k sets take
0.1-7 MB (`memory_bytes`; rte_acl takes 11-216 MB on the same sets).

Threads
-------
The arrays are never written after the build: a compiled structure may be shared by threads
(the lookup runs without the GIL) and pickled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Columns of `AclTables.field` (int64, one row per key field).
DEPTH = 0  # levels of the field's search tree above its leaf level (0: the leaf is the root)
NSTARTS = 1  # number of (merged) intervals of the field
NCLASSES = 2  # number of classes of the field (class values are 0 .. NCLASSES - 1)
GROUP = 3  # the group (row of `group`) this field's class feeds
STRIDE = 4  # the field's weight in its group's combination index
MAX_LEVELS = 8  # tree levels, leaf included (fanout 16: up to 16**8 intervals)
LEVEL_OFF = 5  # MAX_LEVELS columns: offset in `tree` of level l (0 = root, DEPTH = leaf)
LEVEL_LAST = LEVEL_OFF + MAX_LEVELS  # MAX_LEVELS columns: clamp of the index below level l
FANOUT = 16  # keys per tree node (a leaf node is FANOUT keys, then their FANOUT classes)
FIELD_COLUMNS = (
    "depth",
    "nstarts",
    "nclasses",
    "group",
    "stride",
    *(f"level_off{i}" for i in range(MAX_LEVELS)),
    *(f"level_last{i}" for i in range(MAX_LEVELS)),
)

# Columns of `AclTables.group` (int64, one row per group of fields ANDed at the end).
GTAB_OFF = 0  # offset of the group's combination table in `gtab` (its values are global rows)
GROUP_COLUMNS = ("gtab_off",)


@dataclass(frozen=True, eq=False)
class AclTables:
    """The compiled structure (see the module docstring).  Every array is C-contiguous."""

    version: int  # 4 or 6
    n_rules: int  # rules of the caller (before IPv6 box expansion)
    field: np.ndarray  # int64 [F, len(FIELD_COLUMNS)]
    group: np.ndarray  # int64 [G, len(GROUP_COLUMNS)]
    tree: np.ndarray  # uint32 (IPv4) / uint64 (IPv6): every field's search-tree levels
    gtab: np.ndarray  # uint32 [sum of the groups' combinations]: combination index -> global row
    summary: np.ndarray  # uint64 [rows, S]: bit w % 64 of word w // 64 = word w of the row != 0
    rank: np.ndarray  # uint32 [rows, S]: index in `words` of the row's first word of block s
    words: np.ndarray  # uint64 [non-zero words]: the rows' non-zero bitset words, row-major
    rule_of: np.ndarray  # int32 [64 * words per row]: caller's rule of each bit, -1 = padding
    identity: bool  # rule_of[b] == b for every rule bit (no IPv6 expansion): skip the load

    @property
    def key_dtype(self) -> np.dtype:
        return np.dtype(np.uint32 if self.version == 4 else np.uint64)

    @property
    def memory_bytes(self) -> int:
        arrays = (
            self.field,
            self.group,
            self.tree,
            self.gtab,
            self.summary,
            self.rank,
            self.words,
            self.rule_of,
        )
        return int(sum(a.nbytes for a in arrays))

    def _leaf(self, f: int) -> np.ndarray:
        row = self.field[f]
        leaf = int(row[LEVEL_OFF + row[DEPTH]])
        nodes = -(-int(row[NSTARTS]) // FANOUT)
        return self.tree[leaf : leaf + nodes * 2 * FANOUT].reshape(nodes, 2 * FANOUT)

    def starts(self, f: int) -> np.ndarray:
        """First key of each interval of field f (from the leaf level of its tree)."""
        return self._leaf(f)[:, :FANOUT].ravel()[: int(self.field[f, NSTARTS])]

    def classes(self, f: int) -> np.ndarray:
        """Class of each interval of field f (from the leaf level of its tree)."""
        return self._leaf(f)[:, FANOUT:].ravel()[: int(self.field[f, NSTARTS])]

    def row_bits(self, row: int) -> np.ndarray:
        """Row `row` of the bit matrix, unpacked (uint64 words; for tests and inspection)."""
        nonzero = np.unpackbits(self.summary[row].view(np.uint8), bitorder="little")
        dense = np.zeros(nonzero.size, np.uint64)
        start = int(self.rank[row, 0])
        count = int(nonzero.sum())
        dense[nonzero.astype(bool)] = self.words[start : start + count]
        return dense
