# Cython declarations of the first-match kernel, classifier/acl/acl_lookup.h (read its header
# comment and classifier/acl/tables.py first). cimported by the lookup twin's compiled module
# (_lookup.pyx) and by the engine's fused pass (classifier/engine/_fused.pyx), which calls the
# kernel per chunk. The path is relative to the generated .c file, one directory below
# classifier/ in both cases.

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t


cdef extern from "../acl/acl_lookup.h" nogil:
    int acl_isa_cap
    int acl_isa_level()
    void acl_match_v4(const int64_t *field, const int64_t *group, int64_t ngroups,
                      const uint32_t *tree, const uint32_t *gtab, const uint64_t *summary,
                      const uint32_t *rank,
                      int64_t nsumm, const uint64_t *words, const int32_t *rule_of, int identity,
                      const uint32_t *keys, int64_t n, int32_t *out)
    void acl_match_v6(const int64_t *field, const int64_t *group, int64_t ngroups,
                      const uint64_t *tree, const uint32_t *gtab, const uint64_t *summary,
                      const uint32_t *rank,
                      int64_t nsumm, const uint64_t *words, const int32_t *rule_of, int identity,
                      const uint64_t *keys, int64_t n, int32_t *out)
