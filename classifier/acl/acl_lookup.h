/* First-match lookup over the tables of classifier/acl/tables.py (read its design note first).
 *
 * Run phase only: every array is built by classifier/acl/build.py and never written here.
 * One kernel per address family, stamped from acl_lookup_impl.h:
 *   acl_match_v4: 5 fields, uint32 keys   (src, dst, sport, dport, proto)
 *   acl_match_v6: 7 fields, uint64 keys   (src hi/lo, dst hi/lo, sport, dport, proto)
 * keys is field-major: keys[f * n + i] is field f of packet i.
 *
 * Packets are walked in blocks of ACL_BLOCK, stage by stage, so that each stage's iterations
 * are independent and the out-of-order core overlaps their cache misses (the rows a later
 * stage needs are prefetched by the earlier one):
 *   1. per field: descend a 16-ary search tree -> class; a group's classes combine (mixed radix)
 *   2. per group: combination table -> row of the bit matrix
 *   3. per packet: first candidate word (AND of the summary rows)
 *   4. per packet: AND of the groups' words, candidates in priority order, first non-zero wins
 * No allocation, no error path: the Python facade validated the input.
 *
 * Each kernel is compiled three times: for baseline x86-64 (or any other target) with portable
 * C; with target("popcnt,bmi,bmi2,avx2") using AVX2 intrinsics for the tree-node compares and
 * the hardware popcount; and with AVX-512 (one compare-to-mask per 16-key node).
 * acl_match_v4/v6 pick one at run time (__builtin_cpu_supports), never -march=native.
 */
#ifndef CLASSIFIER_ACL_LOOKUP_H
#define CLASSIFIER_ACL_LOOKUP_H

#include <stdint.h>

#define ACL_BLOCK 64
/* Column layout of the field and group tables: classifier/acl/tables.py, FIELD_COLUMNS and
 * GROUP_COLUMNS (test_acl.py checks that the numbers agree). */
#define ACL_MAX_LEVELS 8
#define ACL_FANOUT 16
#define ACL_FIELD_COLS (5 + 2 * ACL_MAX_LEVELS)
#define ACL_F_DEPTH 0
#define ACL_F_NCLASSES 2
#define ACL_F_GROUP 3
#define ACL_F_STRIDE 4
#define ACL_F_LEVEL_OFF 5
#define ACL_F_LEVEL_LAST (5 + ACL_MAX_LEVELS)
#define ACL_GROUP_COLS 1
#define ACL_G_GTAB_OFF 0

static inline int acl_ctz64(uint64_t v) { return __builtin_ctzll(v); }

/* Portable popcount (SWAR): no libgcc call on targets without the instruction. */
static inline int64_t acl_popcnt_swar(uint64_t v)
{
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int64_t)((v * 0x0101010101010101ULL) >> 56);
}

/* Keys of a tree node <= key (the node is sorted, so this is the child to take + 1). */
static inline uint32_t acl_count_u32(const uint32_t *node, uint32_t key)
{
    uint32_t c = 0;
    for (int i = 0; i < ACL_FANOUT; i++) c += node[i] <= key;
    return c;
}

static inline uint32_t acl_count_u64(const uint64_t *node, uint64_t key)
{
    uint32_t c = 0;
    for (int i = 0; i < ACL_FANOUT; i++) c += node[i] <= key;
    return c;
}

#define ACL_TARGET
#define ACL_POPCNT acl_popcnt_swar
#define ACL_KEY_T uint32_t
#define ACL_NF 5
#define ACL_COUNT acl_count_u32
#define ACL_FN acl_match_v4_generic
#include "acl_lookup_impl.h"
#undef ACL_KEY_T
#undef ACL_NF
#undef ACL_COUNT
#undef ACL_FN
#define ACL_KEY_T uint64_t
#define ACL_NF 7
#define ACL_COUNT acl_count_u64
#define ACL_FN acl_match_v6_generic
#include "acl_lookup_impl.h"
#undef ACL_KEY_T
#undef ACL_NF
#undef ACL_COUNT
#undef ACL_FN
#undef ACL_TARGET
#undef ACL_POPCNT

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ACL_X86V3 1
#define ACL_TARGET __attribute__((target("popcnt,bmi,bmi2,avx2")))

/* AVX2: a <= k  <=>  max_epu32(a, k) == k; 16 keys in two compares and one popcount. */
ACL_TARGET static inline uint32_t acl_count_u32_avx2(const uint32_t *node, uint32_t key)
{
    const __m256i k = _mm256_set1_epi32((int)key);
    const __m256i a = _mm256_loadu_si256((const __m256i *)node);
    const __m256i b = _mm256_loadu_si256((const __m256i *)(node + 8));
    const __m256i la = _mm256_cmpeq_epi32(_mm256_max_epu32(a, k), k);
    const __m256i lb = _mm256_cmpeq_epi32(_mm256_max_epu32(b, k), k);
    const uint32_t mask = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(la))
                        | ((uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(lb)) << 8);
    return (uint32_t)__builtin_popcount(mask);
}

/* AVX2 has only a signed 64-bit compare: flip the sign bits, count the keys above. */
ACL_TARGET static inline uint32_t acl_count_u64_avx2(const uint64_t *node, uint64_t key)
{
    const __m256i bias = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    const __m256i k = _mm256_xor_si256(_mm256_set1_epi64x((long long)key), bias);
    uint32_t above = 0;
    for (int i = 0; i < ACL_FANOUT; i += 4) {
        const __m256i a = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(node + i)), bias);
        const __m256i gt = _mm256_cmpgt_epi64(a, k);
        above |= (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(gt)) << i;
    }
    return ACL_FANOUT - (uint32_t)__builtin_popcount(above);
}

#define ACL_POPCNT __builtin_popcountll
#define ACL_KEY_T uint32_t
#define ACL_NF 5
#define ACL_COUNT acl_count_u32_avx2
#define ACL_FN acl_match_v4_x86v3
#include "acl_lookup_impl.h"
#undef ACL_KEY_T
#undef ACL_NF
#undef ACL_COUNT
#undef ACL_FN
#define ACL_KEY_T uint64_t
#define ACL_NF 7
#define ACL_COUNT acl_count_u64_avx2
#define ACL_FN acl_match_v6_x86v3
#include "acl_lookup_impl.h"
#undef ACL_KEY_T
#undef ACL_NF
#undef ACL_COUNT
#undef ACL_FN
#undef ACL_TARGET
#undef ACL_POPCNT

/* x86-64-v4 (AVX-512): a whole 16-key uint32 node in one unsigned compare-to-mask. */
#define ACL_X86V4 1
#define ACL_TARGET __attribute__((target("popcnt,bmi,bmi2,avx2,avx512f,avx512bw,avx512vl")))

ACL_TARGET static inline uint32_t acl_count_u32_avx512(const uint32_t *node, uint32_t key)
{
    const __m512i a = _mm512_loadu_si512((const void *)node);
    const __mmask16 le = _mm512_cmple_epu32_mask(a, _mm512_set1_epi32((int)key));
    return (uint32_t)__builtin_popcount((unsigned)le);
}

ACL_TARGET static inline uint32_t acl_count_u64_avx512(const uint64_t *node, uint64_t key)
{
    const __m512i k = _mm512_set1_epi64((long long)key);
    const __mmask8 lo = _mm512_cmple_epu64_mask(_mm512_loadu_si512((const void *)node), k);
    const __mmask8 hi = _mm512_cmple_epu64_mask(_mm512_loadu_si512((const void *)(node + 8)), k);
    return (uint32_t)__builtin_popcount((unsigned)lo | ((unsigned)hi << 8));
}

#define ACL_POPCNT __builtin_popcountll
#define ACL_KEY_T uint32_t
#define ACL_NF 5
#define ACL_COUNT acl_count_u32_avx512
#define ACL_FN acl_match_v4_x86v4
#include "acl_lookup_impl.h"
#undef ACL_KEY_T
#undef ACL_NF
#undef ACL_COUNT
#undef ACL_FN
#define ACL_KEY_T uint64_t
#define ACL_NF 7
#define ACL_COUNT acl_count_u64_avx512
#define ACL_FN acl_match_v6_x86v4
#include "acl_lookup_impl.h"
#undef ACL_KEY_T
#undef ACL_NF
#undef ACL_COUNT
#undef ACL_FN
#undef ACL_TARGET
#undef ACL_POPCNT
#endif

/* Tests set this to cap the kernel: 0 = best available, 1 = generic, 2 = at most x86-64-v3. */
static int acl_isa_cap = 0;

/* Which kernel runs on this processor: 0 generic, 3 x86-64-v3 (AVX2), 4 x86-64-v4 (AVX-512). */
static inline int acl_isa_level(void)
{
#ifdef ACL_X86V3
    if (acl_isa_cap == 1) return 0;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")
          && __builtin_cpu_supports("bmi2")))
        return 0;
    if (acl_isa_cap != 2 && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return 4;
    return 3;
#else
    return 0;
#endif
}

#define ACL_ARGS(KEY_T) const int64_t *field, const int64_t *group, int64_t ngroups, \
    const KEY_T *tree, const uint32_t *gtab, \
    const uint64_t *summary, const uint32_t *rank, int64_t nsumm, const uint64_t *words, \
    const int32_t *rule_of, int identity, const KEY_T *keys, int64_t n, int32_t *out
#define ACL_PASS field, group, ngroups, tree, gtab, summary, rank, nsumm, \
    words, rule_of, identity, keys, n, out

static void acl_match_v4(ACL_ARGS(uint32_t))
{
#ifdef ACL_X86V3
    const int level = acl_isa_level();
    if (level == 4) { acl_match_v4_x86v4(ACL_PASS); return; }
    if (level == 3) { acl_match_v4_x86v3(ACL_PASS); return; }
#endif
    acl_match_v4_generic(ACL_PASS);
}

static void acl_match_v6(ACL_ARGS(uint64_t))
{
#ifdef ACL_X86V3
    const int level = acl_isa_level();
    if (level == 4) { acl_match_v6_x86v4(ACL_PASS); return; }
    if (level == 3) { acl_match_v6_x86v3(ACL_PASS); return; }
#endif
    acl_match_v6_generic(ACL_PASS);
}

#endif
