/* Surviving SIGBUS on a mapped capture that shrinks while it is read.
 *
 * A page of a file mapping that lies past the file's current end cannot be read: the kernel
 * sends SIGBUS, whose default action kills the process. A capture truncated, rotated or
 * rewritten by another process while the reader walks its map would do exactly that, at any
 * moment (a size check before each window leaves a race). So the reader runs the core under
 * a guard (decoding: `pc_run_guarded`; framing the scale-out's blocks: `pc_skip_guarded`),
 * which records the mapped range and a jump target in thread-local storage,
 * and the SIGBUS handler, when the faulting address lies inside that range, jumps back to it.
 * The run then returns STOP_FAULT with the reader state exactly as it was on entry (a copy
 * taken then: the rows of the aborted call are dropped, nothing half-written is kept), and
 * the facade reads on from there with pread, which cannot fault.
 *
 * Invariants and limits:
 * - the handler is installed (once, and again if someone replaced it) with the GIL held, so
 *   two threads never race on sigaction; the guard itself is per thread (__thread);
 * - a SIGBUS that is not a guarded read (another address, or no guarded run on this thread)
 *   goes to the handler that was there before ours, or, if that was the default, restores
 *   the default: the faulting access repeats and the process dies as it would have;
 * - the core does no allocation, holds no lock and calls nothing while it reads the map, so
 *   leaving it by siglongjmp skips no clean-up; the signal mask is restored (sigsetjmp(.., 1)).
 */
#ifndef CLASSIFIER_PCAP_GUARD_H
#define CLASSIFIER_PCAP_GUARD_H

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include "pcap_core.h"

typedef struct {
    volatile sig_atomic_t armed;
    uintptr_t lo;
    uint64_t len;
    sigjmp_buf env;
} pc_guard_t;

static __thread pc_guard_t pc_guard;
static struct sigaction pc_guard_prev;

static void pc_guard_handler(int sig, siginfo_t *si, void *uc) {
    pc_guard_t *g = &pc_guard;
    if (g->armed && (uintptr_t)si->si_addr - g->lo < g->len) {
        g->armed = 0;
        siglongjmp(g->env, 1);
    }
    if (pc_guard_prev.sa_flags & SA_SIGINFO) {
        if (pc_guard_prev.sa_sigaction != pc_guard_handler) {
            pc_guard_prev.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (pc_guard_prev.sa_handler != SIG_DFL && pc_guard_prev.sa_handler != SIG_IGN) {
        pc_guard_prev.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL); /* the access repeats and the process dies of it, as without us */
}

/* Install the handler unless it is in place. Call with the GIL held. 0, or -1 (errno). */
static int pc_guard_install(void) {
    struct sigaction cur, sa;
    if (sigaction(SIGBUS, NULL, &cur) != 0) return -1;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == pc_guard_handler) return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = pc_guard_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGBUS, &sa, &pc_guard_prev);
}

/* pc_run over the mapped bytes p[0..len), surviving SIGBUS inside them: STOP_FAULT then, with
 * *s, *rowp and the fallback list (fb may be NULL when c is: framing) as they were on entry. */
static int pc_run_guarded(pc_state *s, const uint8_t *p, uint64_t len, pc_cols *c, size_t *rowp,
                          size_t cap, uint64_t limit, pc_fallback *fb) {
    pc_state saved;
    size_t row0 = *rowp;
    size_t fb0 = fb ? fb->n : 0;
    int stop;
    memcpy(&saved, s, sizeof saved);
    pc_guard.lo = (uintptr_t)p;
    pc_guard.len = len;
    if (sigsetjmp(pc_guard.env, 1)) {
        memcpy(s, &saved, sizeof saved);
        *rowp = row0;
        if (fb) fb->n = fb0;
        return STOP_FAULT;
    }
    pc_guard.armed = 1;
    stop = pc_run(s, p, len, c, rowp, cap, limit, fb);
    pc_guard.armed = 0;
    return stop;
}

/* Frame records from `pos` without decoding them (no columns, no fallback list), up to
 * `limit`, under the same guard: the first record is always taken (one larger than the limit
 * is a block of its own), then every record that ends at or before `limit` (STOP_LIMIT before
 * the first that would end past it), until the end (STOP_EOF), damage, a full interface table
 * (STOP_GROW_IFACES: grow, and call again), a record past the buffer of a stream (STOP_MORE)
 * or a fault (STOP_FAULT). */
static int pc_skip_guarded(pc_state *s, const uint8_t *p, uint64_t len, uint64_t limit) {
    size_t row = 0;
    return pc_run_guarded(s, p, len, NULL, &row, SIZE_MAX, limit, NULL);
}

#endif
