"""`--filter EXPR`: tcpdump's filter syntax, compiled by libpcap, run by the reader core.

Design note. A filter means exactly what it means to tcpdump because libpcap's own compiler
turns it into classic BPF: `pcap_compile` through ctypes (no build-time dependency: Debian's
libpcap0.8, `apt-get install libpcap0.8`, or any libpcap.so on the loader's path). Programs
depend on the link type, so one is compiled per link type met, the first time a record of it
is read (the core stops with STOP_FILTER and this module compiles it); libpcap sees the link
type as it would read it from the file (a one-record-header capture it opens itself), so the
LINKTYPE -> DLT mapping is tcpdump's too. The program then runs in the reader's native loop
(pcap_bpf.h, the interpreter of the BPF paper and of libpcap's bpf_filter) on each record's
raw frame, before any decoding: a record the filter rejects costs one BPF run and is never a
row. The pure twin runs the same program with `run` below.

What a filter drops is not a record of the run: the rows, the summary, the connection state
and every output hold the accepted records only; the number dropped is counted
(`Capture.filtered`, the summary's `filter`). Records keep their index in the file.

`validate` checks a program once (what libpcap's bpf_validate checks): every jump inside the
program, the last instruction a return, scratch-memory indices below 16. Opcodes are the
standard's (<pcap/bpf.h>), mirrored in pcap_bpf.h.
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Any

import numpy as np

from classifier.errors import UsageError

__all__ = ["INSN", "CaptureFilter", "libpcap", "run", "validate"]

# one instruction, in the C layout of `struct bpf_insn` (pcap_bpf.h pc_bpf_insn)
INSN = np.dtype([("code", "=u2"), ("jt", "u1"), ("jf", "u1"), ("k", "=u4")])
MAX_INSNS = 4096  # BPF_MAXINSNS
MEMWORDS = 16

LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0,
)  # fmt: skip
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X, A = 0x00, 0x08, 0x10
TAX, TXA = 0x00, 0x80
NETMASK_UNKNOWN = 0xFFFFFFFF
SNAPLEN = 262144
LIBPCAP_NAMES = ("libpcap.so.1", "libpcap.so.0.8", "libpcap.so")


@functools.cache
def _program_type() -> Any:
    """`struct bpf_program` (and its `struct bpf_insn`) for ctypes. ctypes is imported only
    when a filter is compiled: it and libpcap's lookup are not part of every start-up."""
    import ctypes

    class Insn(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint32),
        ]

    class Program(ctypes.Structure):
        _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(Insn))]

    return Program


@functools.cache
def libpcap() -> Any:
    """libpcap through ctypes, or None where it cannot be loaded."""
    import ctypes
    import ctypes.util

    program_type = _program_type()
    names = [ctypes.util.find_library("pcap"), *LIBPCAP_NAMES]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_offline.restype = ctypes.c_void_p
        lib.pcap_open_offline.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(program_type),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(program_type)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def _compile(expression: str, linktype: int) -> np.ndarray | str:
    """libpcap's program for `expression` on `linktype` (as a capture file names it), or its
    error message."""
    import ctypes
    import tempfile

    lib = libpcap()
    if lib is None:
        return "libpcap is not installed (Debian: apt-get install libpcap0.8)"
    errbuf = ctypes.create_string_buffer(512)
    with tempfile.NamedTemporaryFile(suffix=".pcap", delete=False) as f:
        f.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        name = f.name
    try:
        handle = lib.pcap_open_offline(name.encode(), errbuf)
    finally:
        os.unlink(name)
    if not handle:
        return errbuf.value.decode(errors="replace") or f"link type {linktype} unknown to libpcap"
    try:
        program = _program_type()()
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1,
                            NETMASK_UNKNOWN) != 0:  # fmt: skip
            return (lib.pcap_geterr(handle) or b"syntax error").decode(errors="replace")
        try:
            insns = np.zeros(program.bf_len, INSN)
            for i in range(program.bf_len):
                insn = program.bf_insns[i]
                insns[i] = (insn.code, insn.jt, insn.jf, insn.k)
        finally:
            lib.pcap_freecode(ctypes.byref(program))
    finally:
        lib.pcap_close(handle)
    return insns


def validate(insns: np.ndarray) -> str:
    """ "" for a program the interpreters may run, else what is wrong with it."""
    n = len(insns)
    if not 1 <= n <= MAX_INSNS:
        return f"{n} instructions (1..{MAX_INSNS} allowed)"
    for i, (code, jt, jf, k) in enumerate(insns.tolist()):
        cls = code & 7
        if cls == JMP:
            targets = (k,) if code & 0xF0 == JA else (jt, jf)
            if any(i + 1 + t >= n for t in targets):
                return f"instruction {i} jumps outside the program"
        elif (cls in (ST, STX) or (cls in (LD, LDX) and code & 0xE0 == MEM)) and k >= MEMWORDS:
            return f"instruction {i} uses scratch memory word {k}"
    if insns["code"][-1] & 7 != RET:
        return "the last instruction does not return"
    return ""


def packed(insns: np.ndarray) -> np.ndarray:
    """A program as the cores take it: one uint64 per instruction (the C struct's bytes)."""
    return np.ascontiguousarray(insns, dtype=INSN).view(np.uint64)


def run(program: np.ndarray, frame: bytes, wire: int) -> int:
    """The pure interpreter (the twin's): BPF's return value for `frame`, 0 = reject."""
    insns = np.ascontiguousarray(program).view(INSN).tolist()
    a = x = 0
    mem = [0] * MEMWORDS
    n = len(frame)
    i = 0
    while True:
        code, jt, jf, k = insns[i]
        i += 1
        cls, size, mode = code & 7, code & 0x18, code & 0xE0
        if cls == RET:
            return a if size == A else (k if size == K else 0)
        if cls == LD:
            if mode in (ABS, IND):
                width = 4 if size == W else 2 if size == H else 1
                at = k + (x if mode == IND else 0)
                if at > 0xFFFFFFFF or at > n or width > n - at:
                    return 0
                a = int.from_bytes(frame[at : at + width], "big")
            elif mode == IMM:
                a = k
            elif mode == LEN:
                a = wire
            elif mode == MEM:
                a = mem[k & 15]
            else:
                return 0
        elif cls == LDX:
            if mode == IMM:
                x = k
            elif mode == LEN:
                x = wire
            elif mode == MEM:
                x = mem[k & 15]
            elif mode == MSH and size == B:
                if k >= n:
                    return 0
                x = (frame[k] & 0xF) << 2
            else:
                return 0
        elif cls == ST:
            mem[k & 15] = a
        elif cls == STX:
            mem[k & 15] = x
        elif cls == ALU:
            v = x if code & X else k
            op = code & 0xF0
            if op in (DIV, MOD) and v == 0:
                return 0
            if op == ADD:
                a = (a + v) & 0xFFFFFFFF
            elif op == SUB:
                a = (a - v) & 0xFFFFFFFF
            elif op == MUL:
                a = (a * v) & 0xFFFFFFFF
            elif op == DIV:
                a //= v
            elif op == MOD:
                a %= v
            elif op == OR:
                a |= v
            elif op == AND:
                a &= v
            elif op == XOR:
                a ^= v
            elif op == LSH:
                a = (a << v) & 0xFFFFFFFF if v < 32 else 0
            elif op == RSH:
                a = a >> v if v < 32 else 0
            elif op == NEG:
                a = (-a) & 0xFFFFFFFF
            else:
                return 0
        elif cls == JMP:
            v = x if code & X else k
            op = code & 0xF0
            if op == JA:
                i += k
                continue
            if op == JEQ:
                taken = a == v
            elif op == JGT:
                taken = a > v
            elif op == JGE:
                taken = a >= v
            elif op == JSET:
                taken = (a & v) != 0
            else:
                return 0
            i += jt if taken else jf
        else:  # MISC
            if code & 0xF8 == TAX:
                x = a
            elif code & 0xF8 == TXA:
                a = x
            else:
                return 0


class CaptureFilter:
    """One `--filter` expression, compiled per link type on demand (and checked at once on
    Ethernet, so a typo is bad input before any capture is read)."""

    def __init__(self, expression: str):
        self.expression = expression
        self._programs: dict[int, np.ndarray] = {}
        if libpcap() is None:
            raise UsageError(
                f"--filter {expression!r}: libpcap is not installed "
                "(Debian: apt-get install libpcap0.8)"
            )
        self.program(1)

    def program(self, linktype: int) -> np.ndarray:
        """The packed program for records of `linktype`; UsageError when libpcap cannot
        compile the expression for it."""
        found = self._programs.get(linktype)
        if found is None:
            result = _compile(self.expression, linktype)
            if isinstance(result, str):
                raise UsageError(f"--filter {self.expression!r}: {result} (link type {linktype})")
            problem = validate(result)
            if problem:
                raise UsageError(f"--filter {self.expression!r}: libpcap's program: {problem}")
            found = self._programs[linktype] = packed(result)
        return found
