/* Classic BPF, run by the reader core on each record's raw frame (`--filter EXPR`).
 *
 * The programs come from libpcap's own compiler (pcap_compile, through classifier/pcap/bpf.py),
 * one per link type, so a filter means exactly what it means to tcpdump; this file only runs
 * them. The interpreter is the one of the BPF paper and libpcap's bpf_filter(): accumulator A,
 * index X, scratch memory M[16]; a load outside the captured bytes, a division or modulo by
 * zero, or an unknown opcode rejects the packet (returns 0). Programs are checked once when
 * they are set (classifier/pcap/bpf.py `validate`: every jump lands inside the program, the
 * last instruction returns, memory indices < 16), so a run always ends, within `len`
 * instructions (jumps only go forward).
 *
 * The opcodes are the standard's (<pcap/bpf.h>); bpf.py holds the same numbers for the twin.
 */
#ifndef CLASSIFIER_PCAP_BPF_H
#define CLASSIFIER_PCAP_BPF_H

#include <stdint.h>
#include <string.h>

typedef struct {
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
} pc_bpf_insn;

enum {
    PC_BPF_LD = 0x00, PC_BPF_LDX = 0x01, PC_BPF_ST = 0x02, PC_BPF_STX = 0x03, PC_BPF_ALU = 0x04,
    PC_BPF_JMP = 0x05, PC_BPF_RET = 0x06, PC_BPF_MISC = 0x07,
    PC_BPF_W = 0x00, PC_BPF_H = 0x08, PC_BPF_B = 0x10,
    PC_BPF_IMM = 0x00, PC_BPF_ABS = 0x20, PC_BPF_IND = 0x40, PC_BPF_MEM = 0x60, PC_BPF_LEN = 0x80,
    PC_BPF_MSH = 0xa0,
    PC_BPF_ADD = 0x00, PC_BPF_SUB = 0x10, PC_BPF_MUL = 0x20, PC_BPF_DIV = 0x30, PC_BPF_OR = 0x40,
    PC_BPF_AND = 0x50, PC_BPF_LSH = 0x60, PC_BPF_RSH = 0x70, PC_BPF_NEG = 0x80, PC_BPF_MOD = 0x90,
    PC_BPF_XOR = 0xa0,
    PC_BPF_JA = 0x00, PC_BPF_JEQ = 0x10, PC_BPF_JGT = 0x20, PC_BPF_JGE = 0x30, PC_BPF_JSET = 0x40,
    PC_BPF_K = 0x00, PC_BPF_X = 0x08, PC_BPF_A = 0x10,
    PC_BPF_TAX = 0x00, PC_BPF_TXA = 0x80,
    PC_BPF_MEMWORDS = 16
};

#define PC_MAX_FILTER_LINKS 16

/* The filter of one run: a program per link type (the caller owns the arrays). */
typedef struct {
    uint32_t n;
    uint32_t link[PC_MAX_FILTER_LINKS];
    const pc_bpf_insn *prog[PC_MAX_FILTER_LINKS];
} pc_filter;

static inline uint32_t pc_bpf_load(const uint8_t *p, uint32_t n, uint32_t k, uint32_t size,
                                   int *ok) {
    if (k > n || size > n - k) {
        *ok = 0;
        return 0;
    }
    if (size == 4)
        return ((uint32_t)p[k] << 24) | ((uint32_t)p[k + 1] << 16) | ((uint32_t)p[k + 2] << 8) |
               p[k + 3];
    if (size == 2) return (uint32_t)((p[k] << 8) | p[k + 1]);
    return p[k];
}

/* Run a validated program on a frame of `n` captured bytes (`wire` on the wire): the
 * snapshot length to keep, 0 = reject (BPF's return value). */
static inline uint32_t pc_bpf_run(const pc_bpf_insn *prog, const uint8_t *p, uint32_t n,
                                  uint32_t wire) {
    uint32_t A = 0, X = 0, M[PC_BPF_MEMWORDS];
    const pc_bpf_insn *pc = prog;
    int ok = 1;
    memset(M, 0, sizeof M);
    for (;; pc++) {
        uint32_t k = pc->k;
        uint16_t code = pc->code;
        uint32_t cls = code & 0x07, size = code & 0x18, mode = code & 0xe0;
        switch (cls) {
        case PC_BPF_RET:
            if ((code & 0x18) == PC_BPF_A) return A;
            return (code & 0x18) == PC_BPF_K ? k : 0;
        case PC_BPF_LD: {
            uint32_t bytes = size == PC_BPF_W ? 4 : size == PC_BPF_H ? 2 : 1;
            if (mode == PC_BPF_ABS) A = pc_bpf_load(p, n, k, bytes, &ok);
            else if (mode == PC_BPF_IND) {
                if (X > UINT32_MAX - k) return 0;
                A = pc_bpf_load(p, n, X + k, bytes, &ok);
            } else if (mode == PC_BPF_IMM) A = k;
            else if (mode == PC_BPF_LEN) A = wire;
            else if (mode == PC_BPF_MEM) A = M[k & 15];
            else return 0;
            if (!ok) return 0;
            break;
        }
        case PC_BPF_LDX:
            if (mode == PC_BPF_IMM) X = k;
            else if (mode == PC_BPF_LEN) X = wire;
            else if (mode == PC_BPF_MEM) X = M[k & 15];
            else if (mode == PC_BPF_MSH && size == PC_BPF_B) {
                X = (pc_bpf_load(p, n, k, 1, &ok) & 0xf) << 2;
                if (!ok) return 0;
            } else return 0;
            break;
        case PC_BPF_ST:
            M[k & 15] = A;
            break;
        case PC_BPF_STX:
            M[k & 15] = X;
            break;
        case PC_BPF_ALU: {
            uint32_t v = (code & PC_BPF_X) ? X : k;
            switch (code & 0xf0) {
            case PC_BPF_ADD: A += v; break;
            case PC_BPF_SUB: A -= v; break;
            case PC_BPF_MUL: A *= v; break;
            case PC_BPF_DIV:
                if (!v) return 0;
                A /= v;
                break;
            case PC_BPF_MOD:
                if (!v) return 0;
                A %= v;
                break;
            case PC_BPF_OR: A |= v; break;
            case PC_BPF_AND: A &= v; break;
            case PC_BPF_XOR: A ^= v; break;
            case PC_BPF_LSH: A = v < 32 ? A << v : 0; break;
            case PC_BPF_RSH: A = v < 32 ? A >> v : 0; break;
            case PC_BPF_NEG: A = (uint32_t)(0u - A); break;
            default: return 0;
            }
            break;
        }
        case PC_BPF_JMP: {
            uint32_t v = (code & PC_BPF_X) ? X : k;
            int taken;
            switch (code & 0xf0) {
            case PC_BPF_JA: pc += k; continue;
            case PC_BPF_JEQ: taken = A == v; break;
            case PC_BPF_JGT: taken = A > v; break;
            case PC_BPF_JGE: taken = A >= v; break;
            case PC_BPF_JSET: taken = (A & v) != 0; break;
            default: return 0;
            }
            pc += taken ? pc->jt : pc->jf;
            break;
        }
        case PC_BPF_MISC:
            if ((code & 0xf8) == PC_BPF_TAX) X = A;
            else if ((code & 0xf8) == PC_BPF_TXA) A = X;
            else return 0;
            break;
        default:
            return 0;
        }
    }
}

#endif
