"""Run phase of the first-match classifier: a thin nogil wrapper over acl_lookup.h.

The structure is described in classifier/acl/tables.py; the pure-Python twin with the same
names is classifier/acl/_lookup_py.py.  Arrays arrive validated and C-contiguous from the facade
(classifier.acl): nothing here raises for user input.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t


from classifier.acl.acl_lookup cimport acl_isa_level, acl_match_v4, acl_match_v6

cimport classifier.acl.acl_lookup as kernel


_ISA_NAMES = {0: "generic", 3: "x86-64-v3", 4: "x86-64-v4"}
_ISA_CAPS = {None: 0, "generic": 1, "x86-64-v3": 2, "x86-64-v4": 0}


def isa() -> str:
    """Which kernel runs: "x86-64-v4" (AVX-512), "x86-64-v3" (AVX2) or "generic"."""
    return _ISA_NAMES[acl_isa_level()]


def cap_isa(name: str | None) -> None:
    """Use at most this kernel ("generic", "x86-64-v3"; None = the best) - for tests."""
    kernel.acl_isa_cap = _ISA_CAPS[name]


def match_v4(const int64_t[:, ::1] field, const int64_t[:, ::1] group,
             const uint32_t[::1] tree, const uint32_t[::1] gtab, const uint64_t[:, ::1] summary,
             const uint32_t[:, ::1] rank, const uint64_t[::1] words,
             const int32_t[::1] rule_of, bint identity, const uint32_t[:, ::1] keys,
             int32_t[::1] out) -> None:
    """First match of each column of keys (uint32 [5, n]) into out (int32 [n]).

    identity: rule_of[b] == b for every set bit (no IPv6 expansion), so skip that load.
    """
    cdef int64_t n = keys.shape[1]
    if n == 0:
        return
    # an empty rule set has no bitset words: the kernel reads none (nsumm is 0), so pass NULL
    # rather than the address of an element that does not exist
    cdef const uint64_t* summary_p = &summary[0, 0] if summary.shape[1] else NULL
    cdef const uint32_t* rank_p = &rank[0, 0] if rank.shape[1] else NULL
    cdef const uint64_t* words_p = &words[0] if words.shape[0] else NULL
    cdef const int32_t* rule_of_p = &rule_of[0] if rule_of.shape[0] else NULL
    with nogil:
        acl_match_v4(&field[0, 0], &group[0, 0], group.shape[0], &tree[0], &gtab[0],
                     summary_p, rank_p, summary.shape[1],
                     words_p, rule_of_p, identity, &keys[0, 0], n, &out[0])


def match_v6(const int64_t[:, ::1] field, const int64_t[:, ::1] group,
             const uint64_t[::1] tree, const uint32_t[::1] gtab, const uint64_t[:, ::1] summary,
             const uint32_t[:, ::1] rank, const uint64_t[::1] words,
             const int32_t[::1] rule_of, bint identity, const uint64_t[:, ::1] keys,
             int32_t[::1] out) -> None:
    """First match of each column of keys (uint64 [7, n]) into out (int32 [n])."""
    cdef int64_t n = keys.shape[1]
    if n == 0:
        return
    # an empty rule set has no bitset words: the kernel reads none (nsumm is 0), so pass NULL
    # rather than the address of an element that does not exist
    cdef const uint64_t* summary_p = &summary[0, 0] if summary.shape[1] else NULL
    cdef const uint32_t* rank_p = &rank[0, 0] if rank.shape[1] else NULL
    cdef const uint64_t* words_p = &words[0] if words.shape[0] else NULL
    cdef const int32_t* rule_of_p = &rule_of[0] if rule_of.shape[0] else NULL
    with nogil:
        acl_match_v6(&field[0, 0], &group[0, 0], group.shape[0], &tree[0], &gtab[0],
                     summary_p, rank_p, summary.shape[1],
                     words_p, rule_of_p, identity, &keys[0, 0], n, &out[0])
