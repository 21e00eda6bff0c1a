/* Template body of acl_lookup.h: defines ACL_FN for ACL_KEY_T keys and ACL_NF fields, with
 * ACL_TARGET (function attributes) and ACL_POPCNT (64-bit popcount) chosen per instruction
 * set.  Deliberately without include guard (stamped once per family and instruction set). */

ACL_TARGET static void ACL_FN(
    const int64_t *field, const int64_t *group, int64_t ngroups, const ACL_KEY_T *tree,
    const uint32_t *gtab,
    const uint64_t *summary, const uint32_t *rank, int64_t nsumm, const uint64_t *words,
    const int32_t *rule_of, int identity, const ACL_KEY_T *keys, int64_t n, int32_t *out)
{
    const ACL_KEY_T *flevel[ACL_NF][ACL_MAX_LEVELS];  /* tree levels, root first */
    uint32_t flast[ACL_NF][ACL_MAX_LEVELS];          /* clamp of the index below each level */
    int fdepth[ACL_NF];
    int fgroup[ACL_NF];
    uint32_t fstride[ACL_NF];
    const uint32_t *gtable[ACL_NF];
    const int ng = (int)ngroups;
    uint32_t combo[ACL_NF][ACL_BLOCK];   /* per group: combination index, then row */
    int64_t next_s[ACL_BLOCK];           /* per packet: summary word of the first candidate */
    uint64_t next_c[ACL_BLOCK];          /* ... and the candidates left in that word */

    for (int f = 0; f < ACL_NF; f++) {
        const int64_t *col = field + f * ACL_FIELD_COLS;
        fdepth[f] = (int)col[ACL_F_DEPTH];
        for (int l = 0; l <= fdepth[f]; l++) {
            flevel[f][l] = tree + col[ACL_F_LEVEL_OFF + l];
            flast[f][l] = (uint32_t)col[ACL_F_LEVEL_LAST + l];
        }
        fgroup[f] = (int)col[ACL_F_GROUP];
        fstride[f] = (uint32_t)col[ACL_F_STRIDE];
    }
    for (int g = 0; g < ng; g++) gtable[g] = gtab + group[g * ACL_GROUP_COLS + ACL_G_GTAB_OFF];
    int active[ACL_NF];
    int nactive = 0;
    for (int f = 0; f < ACL_NF; f++)
        if (field[f * ACL_FIELD_COLS + ACL_F_NCLASSES] > 1) active[nactive++] = f;

    for (int64_t base = 0; base < n; base += ACL_BLOCK) {
        const int m = (n - base < ACL_BLOCK) ? (int)(n - base) : ACL_BLOCK;
        for (int g = 0; g < ng; g++)
            for (int j = 0; j < m; j++) combo[g][j] = 0;

        /* 1. every field's class: descend its 16-ary tree (the depth is the same for every
         * packet, and counting keys <= key is branch-free, so nothing mispredicts); a field
         * with a single class (a wildcard in every rule) adds nothing and is skipped */
        for (int a = 0; a < nactive; a++) {
            const int f = active[a];
            const ACL_KEY_T *k = keys + (int64_t)f * n + base;
            const int depth = fdepth[f];
            const uint32_t stride = fstride[f];
            uint32_t *acc = combo[fgroup[f]];
            for (int j = 0; j < m; j++) {
                const ACL_KEY_T key = k[j];
                uint32_t idx = 0;
                for (int l = 0; l < depth; l++) {
                    const ACL_KEY_T *node = flevel[f][l] + (int64_t)idx * ACL_FANOUT;
                    const uint32_t c = ACL_COUNT(node, key);
                    idx = idx * ACL_FANOUT + c - 1;
                    if (idx > flast[f][l]) idx = flast[f][l];
                }
                /* leaf node: FANOUT starts, then their classes (the next cache line) */
                const ACL_KEY_T *leaf = flevel[f][depth] + (int64_t)idx * (2 * ACL_FANOUT);
                __builtin_prefetch(leaf + ACL_FANOUT);
                const uint32_t c = ACL_COUNT(leaf, key);
                acc[j] += (uint32_t)leaf[ACL_FANOUT + c - 1] * stride;
            }
        }
        /* 2. combination -> row of each group; fetch the summary and rank rows early */
        for (int g = 0; g < ng; g++) {
            const uint32_t *gt = gtable[g];
            for (int j = 0; j < m; j++) {
                uint32_t row = gt[combo[g][j]];
                combo[g][j] = row;
                __builtin_prefetch(summary + (int64_t)row * nsumm);
                __builtin_prefetch(rank + (int64_t)row * nsumm);
            }
        }
        /* 3. first candidate word of each packet; fetch its packed words early */
        for (int j = 0; j < m; j++) {
            int64_t s = 0;
            uint64_t cand = 0;
            for (; s < nsumm; s++) {
                cand = summary[(int64_t)combo[0][j] * nsumm + s];
                for (int g = 1; g < ng; g++) cand &= summary[(int64_t)combo[g][j] * nsumm + s];
                if (cand) break;
            }
            next_s[j] = s;
            next_c[j] = cand;
            if (cand) {  /* the first two candidates: a second one is common */
                const uint64_t first = (cand & -cand) - 1;
                const uint64_t rest = cand & (cand - 1);
                const uint64_t second = rest ? (rest & -rest) - 1 : first;
                for (int g = 0; g < ng; g++) {
                    const int64_t at = (int64_t)combo[g][j] * nsumm + s;
                    const uint64_t *w = words + rank[at];
                    __builtin_prefetch(w + ACL_POPCNT(summary[at] & first));
                    __builtin_prefetch(w + ACL_POPCNT(summary[at] & second));
                }
            }
        }
        /* 4. AND the groups' words, candidates in priority order, until one is non-zero.
         * Word w of a row lives at rank[row, s] + popcount(summary[row, s] below w's bit);
         * both are loaded once per block of 64 words, so a candidate costs one load per group. */
        for (int j = 0; j < m; j++) {
            const uint64_t *srow[ACL_NF];
            const uint32_t *rrow[ACL_NF];
            uint64_t sm[ACL_NF];
            const uint64_t *wp[ACL_NF];
            int32_t result = -1;
            for (int g = 0; g < ng; g++) {
                srow[g] = summary + (int64_t)combo[g][j] * nsumm;
                rrow[g] = rank + (int64_t)combo[g][j] * nsumm;
            }
            int64_t s = next_s[j];
            uint64_t cand = next_c[j];
            while (s < nsumm) {
                for (int g = 0; g < ng; g++) {
                    sm[g] = srow[g][s];
                    wp[g] = words + rrow[g][s];
                }
                while (cand) {
                    const uint64_t below = (cand & -cand) - 1;
                    uint64_t v = wp[0][ACL_POPCNT(sm[0] & below)];
                    for (int g = 1; g < ng; g++) v &= wp[g][ACL_POPCNT(sm[g] & below)];
                    if (v) {
                        const int64_t bit = (s * 64 + acl_ctz64(cand)) * 64 + acl_ctz64(v);
                        result = identity ? (int32_t)bit : rule_of[bit];
                        goto done;
                    }
                    cand &= cand - 1;
                }
                if (++s < nsumm) {
                    cand = srow[0][s];
                    for (int g = 1; g < ng; g++) cand &= srow[g][s];
                }
            }
        done:
            out[base + j] = result;
        }
    }
}
