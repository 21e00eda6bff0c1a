"""Pure-Python twin of classifier.acl._lookup: the same walk over the same arrays, plain loops.

Slow (a Python loop per packet and field) and kept that way: it is the readable statement of
what the C kernel in acl_lookup.h does (without its staging and prefetching), and the
fallback without a compiler.
"""

from __future__ import annotations

import numpy as np

from classifier.acl.tables import (
    DEPTH,
    FANOUT,
    GROUP,
    GTAB_OFF,
    LEVEL_LAST,
    LEVEL_OFF,
    STRIDE,
)

_ALL = (1 << 64) - 1


def isa() -> str:
    """Which kernel runs: always the Python loops here."""
    return "python"


def cap_isa(name: str | None) -> None:
    """Nothing to choose in the twin (the compiled module's switch, same name)."""


def _class(tree: np.ndarray, col: np.ndarray, key: int) -> int:
    """Class of the interval holding key: descend the field's 16-ary tree to a leaf node."""
    idx = 0
    for level in range(int(col[DEPTH])):
        node = int(col[LEVEL_OFF + level]) + idx * FANOUT
        count = sum(1 for i in range(FANOUT) if int(tree[node + i]) <= key)
        idx = min(idx * FANOUT + count - 1, int(col[LEVEL_LAST + level]))
    leaf = int(col[LEVEL_OFF + int(col[DEPTH])]) + idx * 2 * FANOUT
    count = sum(1 for i in range(FANOUT) if int(tree[leaf + i]) <= key)
    return int(tree[leaf + FANOUT + count - 1])


def _first(
    rows: list[int], summary: np.ndarray, rank: np.ndarray, words: np.ndarray, rule_of: np.ndarray
) -> int:
    """Lowest bit set in every row: candidates from the summaries, in priority order.

    Word w = 64 s + b of a row is packed at rank[row, s] + popcount(summary[row, s] below b).
    """
    for s in range(summary.shape[1]):
        cand = _ALL
        for row in rows:
            cand &= int(summary[row, s])
        while cand:
            low = cand & -cand
            word = _ALL
            for row in rows:
                below = int(summary[row, s]) & (low - 1)
                word &= int(words[int(rank[row, s]) + below.bit_count()])
            if word:
                w = s * 64 + low.bit_length() - 1
                return int(rule_of[w * 64 + (word & -word).bit_length() - 1])
            cand ^= low
    return -1


def _match(
    field: np.ndarray,
    group: np.ndarray,
    tree: np.ndarray,
    gtab: np.ndarray,
    summary: np.ndarray,
    rank: np.ndarray,
    words: np.ndarray,
    rule_of: np.ndarray,
    keys: np.ndarray,
    out: np.ndarray,
) -> None:
    nfields, n = keys.shape
    for i in range(n):
        combo = [0] * group.shape[0]
        for f in range(nfields):
            col = field[f]
            combo[int(col[GROUP])] += _class(tree, col, int(keys[f, i])) * int(col[STRIDE])
        rows = [int(gtab[int(group[g, GTAB_OFF]) + c]) for g, c in enumerate(combo)]
        out[i] = _first(rows, summary, rank, words, rule_of)


def match_v4(
    field: np.ndarray,
    group: np.ndarray,
    tree: np.ndarray,
    gtab: np.ndarray,
    summary: np.ndarray,
    rank: np.ndarray,
    words: np.ndarray,
    rule_of: np.ndarray,
    identity: bool,
    keys: np.ndarray,
    out: np.ndarray,
) -> None:
    """First match of each column of keys (uint32 [5, n]) into out (int32 [n]).

    `identity` (rule_of[b] == b) only lets the C kernel skip a load; rule_of is used here.
    """
    _match(field, group, tree, gtab, summary, rank, words, rule_of, keys, out)


def match_v6(
    field: np.ndarray,
    group: np.ndarray,
    tree: np.ndarray,
    gtab: np.ndarray,
    summary: np.ndarray,
    rank: np.ndarray,
    words: np.ndarray,
    rule_of: np.ndarray,
    identity: bool,
    keys: np.ndarray,
    out: np.ndarray,
) -> None:
    """First match of each column of keys (uint64 [7, n]) into out (int32 [n])."""
    _match(field, group, tree, gtab, summary, rank, words, rule_of, keys, out)
