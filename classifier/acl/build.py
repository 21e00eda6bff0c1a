"""Build phase: a priority-ordered rule array -> `AclTables` (see classifier/acl/tables.py).

Everything here is numpy over whole columns; no Python loop runs per rule except the IPv6
box expansion of address ranges that cross a 64-bit boundary (rare: prefixes never need it).

Steps, per field:
1. cut the key space at every `lo` and `hi + 1`        (np.unique of the boundaries)
2. rule bitset of every elementary interval          (XOR sweep: a rule's bit is toggled on at
                                                        its first interval, off after its last,
                                                        then accumulated along the key axis)
3. equivalence classes                               (np.unique over the bitset rows)
4. merge adjacent intervals of the same class, build a static 16-ary search tree over them.
The protocol field (value/mask, any mask) is evaluated for all 256 values instead.
Then, over all fields:
5. group fields greedily (pairwise AND of class rows, deduplicated) under a memory budget
6. pack the rows: summary bitmap of non-zero words, rank of each 64-word block, the words.

The input is validated by the facade (classifier.acl): lo <= hi everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classifier.acl.tables import (
    DEPTH,
    FANOUT,
    FIELD_COLUMNS,
    GROUP,
    GROUP_COLUMNS,
    GTAB_OFF,
    LEVEL_LAST,
    LEVEL_OFF,
    NCLASSES,
    NSTARTS,
    STRIDE,
    AclTables,
)
from classifier.errors import ClassifierError

# --- rule records (index = priority; 0 is the highest) ------------------------------------
# Ports are uint32 so that a packet whose ports are unknown can carry a key (PORT_UNKNOWN)
# that no restricted range contains while the wildcard [0, PORT_MAX] still matches it.
RULE_V4_DTYPE = np.dtype(
    [
        ("src_lo", np.uint32),
        ("src_hi", np.uint32),
        ("dst_lo", np.uint32),
        ("dst_hi", np.uint32),
        ("sport_lo", np.uint32),
        ("sport_hi", np.uint32),
        ("dport_lo", np.uint32),
        ("dport_hi", np.uint32),
        ("proto", np.uint8),
        ("proto_mask", np.uint8),
    ]
)
# IPv6 addresses: two uint64 words, most significant first ([0] = bits 127..64).
RULE_V6_DTYPE = np.dtype(
    [
        ("src_lo", np.uint64, (2,)),
        ("src_hi", np.uint64, (2,)),
        ("dst_lo", np.uint64, (2,)),
        ("dst_hi", np.uint64, (2,)),
        ("sport_lo", np.uint32),
        ("sport_hi", np.uint32),
        ("dport_lo", np.uint32),
        ("dport_hi", np.uint32),
        ("proto", np.uint8),
        ("proto_mask", np.uint8),
    ]
)
PORT_MAX = 0xFFFFFFFF  # upper end of a wildcard port range

U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
# Field grouping limits (see _plan_groups).
MAX_COMBINATIONS = 1 << 16  # entries of one group's combination table
MAX_PAIR_BYTES = 32 << 20  # scratch of one trial merge (rows_a x rows_b bitsets)
MIN_GTAB_BYTES = 8 << 10  # a combination table may always be this big
GROWTH = 8  # merges may grow the bitsets to GROWTH x their ungrouped size ...
SMALL_BITS_BYTES = 256 << 10  # ... or to this, whichever is larger,
MAX_BITS_BYTES = 24 << 20  # ... but never beyond this
MAX_SWEEP_BYTES = 2 << 30  # dense interval x rule scratch of one field: refuse beyond this


class RuleSetTooLarge(ClassifierError):
    """Rules too many and too diverse for this structure (the build would exhaust memory)."""


def build(rules: np.ndarray, version: int) -> AclTables:
    """Compile a RULE_V4_DTYPE / RULE_V6_DTYPE array (validated) into tables."""
    n = int(rules.shape[0])
    if version == 4:
        key: np.dtype = np.dtype(np.uint32)
        ranges = [(rules[f + "_lo"], rules[f + "_hi"]) for f in ("src", "dst", "sport", "dport")]
        ranges = [
            (np.ascontiguousarray(lo, key), np.ascontiguousarray(hi, key)) for lo, hi in ranges
        ]
        proto, mask = rules["proto"], rules["proto_mask"]
        rule_of = np.arange(n, dtype=np.int32)
    else:
        key = np.dtype(np.uint64)
        rule_of, src_box, dst_box = _expand_v6(rules)
        ports = [
            (rules[f + "_lo"][rule_of].astype(key), rules[f + "_hi"][rule_of].astype(key))
            for f in ("sport", "dport")
        ]
        ranges = [*_split_boxes(src_box), *_split_boxes(dst_box), *ports]
        proto, mask = rules["proto"][rule_of], rules["proto_mask"][rule_of]
    n_bits = rule_of.size
    nwords = max(1, -(-n_bits // 64))
    kmax = int(np.iinfo(key).max)

    fields = [_range_field(lo, hi, nwords, kmax) for lo, hi in ranges]
    fields.append(_proto_field(np.asarray(proto, np.uint8), np.asarray(mask, np.uint8), nwords))
    return _assemble(version, n, fields, rule_of, nwords, key)


# --- per field --------------------------------------------------------------------------


def _range_field(
    lo: np.ndarray, hi: np.ndarray, nwords: int, kmax: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, class of each interval, class rows) of one range field."""
    key = lo.dtype
    full = hi == key.type(kmax)
    ends = hi[~full] + key.type(1)
    starts = np.unique(np.concatenate([np.zeros(1, key), lo, ends]))
    first = np.searchsorted(starts, lo)
    past = np.full(lo.size, starts.size, np.int64)
    past[~full] = np.searchsorted(starts, ends)
    scratch = (starts.size + 1) * nwords * 8
    if scratch > MAX_SWEEP_BYTES:
        raise RuleSetTooLarge(
            f"rule set too large for the bitset structure: {starts.size} distinct intervals "
            f"x {64 * nwords} rules would need {scratch >> 20} MB while building"
        )
    rows = _sweep(first, past, starts.size, nwords)
    return _classes(starts, rows)


def _proto_field(
    value: np.ndarray, mask: np.ndarray, nwords: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys = np.arange(256, dtype=np.uint8)
    hit = (keys[:, None] & mask[None, :]) == (value & mask)[None, :]
    return _classes(np.arange(256, dtype=np.uint64), _pack_rows(hit, nwords))


def _pack_rows(hit: np.ndarray, nwords: int) -> np.ndarray:
    """bool [rows, bits] -> uint64 [rows, nwords], bit i of word w = column 64 w + i."""
    packed = np.packbits(hit, axis=1, bitorder="little")
    out = np.zeros((hit.shape[0], nwords * 8), np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8").astype(np.uint64)


def _sweep(first: np.ndarray, past: np.ndarray, nint: int, nwords: int) -> np.ndarray:
    """Bitset rows of nint intervals; rule r covers intervals first[r] .. past[r] - 1.

    Events: rule r's bit is set at (first[r], r // 64) and at (past[r], r // 64).  The bits
    at one cell all differ (a rule has one event per row, first < past), so OR-reducing the
    events of a cell is their XOR; the XOR prefix along the intervals gives each row.
    """
    n = first.size
    events = np.zeros((nint + 1) * nwords, np.uint64)
    if n:
        r = np.arange(n, dtype=np.int64)
        bit = np.left_shift(np.uint64(1), (r & 63).astype(np.uint64))
        cell = np.concatenate([first * nwords + (r >> 6), past * nwords + (r >> 6)])
        bits = np.concatenate([bit, bit])
        order = np.argsort(cell, kind="stable")
        cell, bits = cell[order], bits[order]
        head = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        events[cell[head]] = np.bitwise_or.reduceat(bits, head)
    rows = events.reshape(nint + 1, nwords)[:nint]
    return np.bitwise_xor.accumulate(rows, axis=0)


def _classes(starts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicate interval rows into classes and merge adjacent intervals of one class."""
    rows = np.ascontiguousarray(rows)
    void = rows.view(np.dtype((np.void, rows.shape[1] * 8))).ravel()
    _, rep, inv = np.unique(void, return_index=True, return_inverse=True)
    inv = inv.ravel()
    keep = np.r_[True, inv[1:] != inv[:-1]]
    return starts[keep], inv[keep].astype(np.uint32), rows[rep]


def _tree(
    starts: np.ndarray, classes: np.ndarray, key: np.dtype
) -> tuple[list[np.ndarray], list[int]]:
    """Levels (root first, leaf last) of the static search tree over one field's starts.

    A leaf node is FANOUT starts (padded with the key maximum) then their FANOUT classes
    (padded with the last class: only a key equal to the maximum counts padding, and it lies
    in the last interval).  A level above holds the first key of every node below, padded with
    the maximum, up to a single root node.  `lasts[l]` clamps the node index computed at level
    l (the last node of level l + 1); the leaf's entry is its last interval (unused).
    """
    top = key.type(np.iinfo(key).max)

    def pad(values: np.ndarray, fill: object) -> np.ndarray:
        out = np.full(-(-values.size // FANOUT) * FANOUT, fill, key)
        out[: values.size] = values
        return out

    keys = pad(starts.astype(key), top)
    leaf = np.concatenate(
        [keys.reshape(-1, FANOUT), pad(classes.astype(key), classes[-1]).reshape(-1, FANOUT)],
        axis=1,
    )
    levels = [leaf.ravel()]
    lasts = [starts.size - 1]
    firsts = keys[::FANOUT]
    while firsts.size > 1:
        levels.insert(0, pad(firsts, top))
        lasts.insert(0, firsts.size - 1)
        firsts = levels[0][::FANOUT]
    return levels, lasts


@dataclass
class _Group:
    """Fields whose classes are combined into one row before the AND (RFC's phase 1).

    `fields` in mixed-radix order (the first is the most significant digit), `size` the number
    of combinations (product of the class counts), `gt` combination -> row of `rows`.
    """

    fields: list[int]
    size: int
    gt: np.ndarray
    rows: np.ndarray


def _merge(a: _Group, b: _Group) -> _Group:
    ra, rb, nwords = a.rows.shape[0], b.rows.shape[0], a.rows.shape[1]
    pairs = (a.rows[:, None, :] & b.rows[None, :, :]).reshape(ra * rb, nwords)
    void = pairs.view(np.dtype((np.void, nwords * 8))).ravel()
    _, rep, inv = np.unique(void, return_index=True, return_inverse=True)
    gt = inv.ravel().reshape(ra, rb)[a.gt[:, None], b.gt[None, :]].ravel()
    return _Group(a.fields + b.fields, a.size * b.size, gt, pairs[rep])


def _packed_bytes(rows: np.ndarray) -> int:
    """Bytes of rows once packed: non-zero words, plus summary and rank per 64 words."""
    return 8 * int(np.count_nonzero(rows)) + 12 * int(rows.shape[0]) * -(-int(rows.shape[1]) // 64)


def _plan_groups(rows: list[np.ndarray]) -> list[_Group]:
    """Greedily merge fields while the combination tables and rows stay small.

    Each merge removes one row load and AND per packet; it is kept while the bitsets stay
    within GROWTH x their ungrouped size (and MAX_BITS_BYTES), and the combination table is
    small next to the bitsets (so a 10-rule set stays a few kilobytes).  Pairs are tried
    smallest first; src x dst of a large set never qualifies (the product is too big).
    """
    groups = [_Group([f], r.shape[0], np.arange(r.shape[0]), r) for f, r in enumerate(rows)]
    nwords = rows[0].shape[1]
    total = sum(_packed_bytes(g.rows) for g in groups)
    budget = min(MAX_BITS_BYTES, max(SMALL_BITS_BYTES, GROWTH * total))
    tried: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    while len(groups) > 1:
        options = []
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i], groups[j]
                key = (tuple(a.fields), tuple(b.fields))
                size = a.size * b.size
                pair_bytes = a.rows.shape[0] * b.rows.shape[0] * nwords * 8
                if (
                    key in tried
                    or size > MAX_COMBINATIONS
                    or pair_bytes > MAX_PAIR_BYTES
                    or 4 * size > max(MIN_GTAB_BYTES, budget // 4)
                ):
                    continue
                options.append((pair_bytes, i, j))
        if not options:
            break
        _, i, j = min(options)
        a, b = groups[i], groups[j]
        tried.add((tuple(a.fields), tuple(b.fields)))
        merged = _merge(a, b)
        grown = _packed_bytes(merged.rows) - _packed_bytes(a.rows) - _packed_bytes(b.rows)
        if total + grown > budget:
            continue
        total += grown
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [merged]
    return groups


def _assemble(
    version: int,
    n_rules: int,
    fields: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    rule_of: np.ndarray,
    nwords: int,
    key: np.dtype,
) -> AclTables:
    """Per-field (starts, classes, rows) -> the flat arrays: trees, groups, packed rows."""
    groups = _plan_groups([r for _, _, r in fields])
    table = np.zeros((len(fields), len(FIELD_COLUMNS)), np.int64)
    tree = []
    tree_off = 0
    for f, (fstarts, fclass, frows) in enumerate(fields):
        levels, lasts = _tree(fstarts, fclass, key)
        table[f, [DEPTH, NSTARTS, NCLASSES]] = (len(levels) - 1, fstarts.size, frows.shape[0])
        for level, (values, last) in enumerate(zip(levels, lasts, strict=True)):
            table[f, LEVEL_OFF + level], table[f, LEVEL_LAST + level] = tree_off, last
            tree.append(values)
            tree_off += values.size
    gtable = np.zeros((len(groups), len(GROUP_COLUMNS)), np.int64)
    gtab, rows = [], []
    gtab_off = row_off = 0
    for g, group in enumerate(groups):
        stride = 1
        for f in reversed(group.fields):
            table[f, GROUP], table[f, STRIDE] = g, stride
            stride *= int(table[f, NCLASSES])
        gtable[g, GTAB_OFF] = gtab_off
        gtab.append(group.gt + row_off)
        rows.append(group.rows)
        gtab_off += group.size
        row_off += group.rows.shape[0]
    bits = np.ascontiguousarray(np.concatenate(rows, axis=0), np.uint64)
    nsumm = -(-nwords // 64)
    nonzero = bits != 0
    summary = _pack_rows(nonzero, nsumm)
    per_block = np.zeros((bits.shape[0], nsumm * 64), np.int64)
    per_block[:, :nwords] = nonzero
    per_block = per_block.reshape(bits.shape[0], nsumm, 64).sum(axis=2).ravel()
    rank = (np.cumsum(per_block) - per_block).reshape(bits.shape[0], nsumm)
    padded = np.full(nwords * 64, -1, np.int32)
    padded[: rule_of.size] = rule_of
    return AclTables(
        version=version,
        n_rules=n_rules,
        field=table,
        group=gtable,
        tree=np.concatenate(tree),
        gtab=np.concatenate(gtab).astype(np.uint32),
        summary=summary,
        rank=rank.astype(np.uint32),
        words=np.ascontiguousarray(bits[nonzero]),
        rule_of=padded,
        identity=bool(np.array_equal(rule_of, np.arange(rule_of.size))),
    )


# --- IPv6: exact split of 128-bit ranges into (hi64, lo64) boxes ---------------------------

Box = tuple[int, int, int, int]  # hi_lo, hi_hi, lo_lo, lo_hi


def _boxes(lo: tuple[int, int], hi: tuple[int, int]) -> list[Box]:
    """The 128-bit range [lo, hi] as at most three disjoint boxes hi64 x lo64."""
    (ah, al), (bh, bl) = lo, hi
    top = int(U64_MAX)
    if ah == bh:
        return [(ah, ah, al, bl)]
    out: list[Box] = []
    mid_lo, mid_hi = ah, bh
    if al != 0:
        out.append((ah, ah, al, top))
        mid_lo = ah + 1
    if bl != top:
        mid_hi = bh - 1
    if mid_lo <= mid_hi:
        out.append((mid_lo, mid_hi, 0, top))
    if bl != top:
        out.append((bh, bh, 0, bl))
    return out


def _expand_v6(rules: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rule index of each bit, src box, dst box), boxes as uint64 [bits, 4]."""
    src_lo, src_hi = rules["src_lo"], rules["src_hi"]
    dst_lo, dst_hi = rules["dst_lo"], rules["dst_hi"]
    simple = (src_lo[:, 0] == src_hi[:, 0]) | ((src_lo[:, 1] == 0) & (src_hi[:, 1] == U64_MAX))
    simple &= (dst_lo[:, 0] == dst_hi[:, 0]) | ((dst_lo[:, 1] == 0) & (dst_hi[:, 1] == U64_MAX))
    if simple.all():  # every range is one box (all prefixes are): no Python loop
        src = np.stack([src_lo[:, 0], src_hi[:, 0], src_lo[:, 1], src_hi[:, 1]], axis=1)
        dst = np.stack([dst_lo[:, 0], dst_hi[:, 0], dst_lo[:, 1], dst_hi[:, 1]], axis=1)
        return np.arange(len(rules), dtype=np.int32), src, dst
    rule_of: list[int] = []
    src_boxes: list[Box] = []
    dst_boxes: list[Box] = []
    for r in range(len(rules)):
        sb = _boxes((int(src_lo[r, 0]), int(src_lo[r, 1])), (int(src_hi[r, 0]), int(src_hi[r, 1])))
        db = _boxes((int(dst_lo[r, 0]), int(dst_lo[r, 1])), (int(dst_hi[r, 0]), int(dst_hi[r, 1])))
        for s in sb:
            for d in db:
                rule_of.append(r)
                src_boxes.append(s)
                dst_boxes.append(d)
    return (
        np.array(rule_of, np.int32),
        np.array(src_boxes, np.uint64).reshape(-1, 4),
        np.array(dst_boxes, np.uint64).reshape(-1, 4),
    )


def _split_boxes(box: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boxes -> the (lo, hi) columns of the hi64 field and of the lo64 field."""
    return [
        (np.ascontiguousarray(box[:, 0]), np.ascontiguousarray(box[:, 1])),
        (np.ascontiguousarray(box[:, 2]), np.ascontiguousarray(box[:, 3])),
    ]
