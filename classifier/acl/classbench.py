"""ClassBench files: filter sets, traces and `.firstmatch` answers (the field's benchmarks).

    rules = read_classbench_rules(path)     # RuleSet, len(rules) == rule lines
    trace = read_classbench_trace(path)     # PACKET_V4_DTYPE array: src, dst, sport, dport, proto
    answers = read_firstmatch(path)         # int32: the first matching rule (0-based) or -1

Errors name the file and the line (`RuleFileError`, `TraceFileError`).

`SAMPLE_RULES` and `SAMPLE_TRACE` are a small set in the same format that the package carries
(500 filters, 5,000 packets; `examples/make_classbench_sample.py` writes them), for examples
and a first try without the field's data sets.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from classifier.acl.build import PORT_MAX, RULE_V4_DTYPE
from classifier.acl.matcher import (
    PACKET_V4_DTYPE,
    AclError,
    RuleFileError,
    RuleSet,
    TraceFileError,
)

SAMPLE_RULES = Path(__file__).resolve().parent / "data" / "sample_rules"
SAMPLE_TRACE = Path(__file__).resolve().parent / "data" / "sample_trace"

_RULE_RE = re.compile(
    rb"@(\d+)\.(\d+)\.(\d+)\.(\d+)/(\d+)\s+(\d+)\.(\d+)\.(\d+)\.(\d+)/(\d+)\s+"
    rb"(\d+)\s*:\s*(\d+)\s+(\d+)\s*:\s*(\d+)\s+0x([0-9a-fA-F]{1,2})/0x([0-9a-fA-F]{1,2})"
    rb"(?:\s+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+)?\s*"
)


def _read(path: str | Path, error: type[AclError]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None


def _prefix(octets: tuple[bytes, ...], length: bytes, what: str) -> tuple[int, int]:
    parts = [int(o) for o in octets]
    plen = int(length)
    if any(p > 255 for p in parts):
        raise ValueError(f"{what} address has an octet above 255")
    if plen > 32:
        raise ValueError(f"{what} prefix length {plen} above 32")
    addr = (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]
    host = (1 << (32 - plen)) - 1
    return addr & ~host & 0xFFFFFFFF, (addr & ~host & 0xFFFFFFFF) | host


def _ports(lo: bytes, hi: bytes, what: str) -> tuple[int, int]:
    a, b = int(lo), int(hi)
    if b > 0xFFFF or a > b:
        raise ValueError(f"{what} port range {a} : {b} is not within 0 : 65535")
    return (0, PORT_MAX) if (a, b) == (0, 0xFFFF) else (a, b)


def read_classbench_rules(path: str | Path) -> RuleSet:
    """ClassBench filter file -> RuleSet (IPv4); blank lines are skipped, flags ignored.

    A full port range `0 : 65535` becomes the wildcard [0, PORT_MAX].
    """
    rows: list[tuple[int, ...]] = []
    for lineno, line in enumerate(_read(path, RuleFileError).splitlines(), start=1):
        if not line.strip():
            continue
        m = _RULE_RE.fullmatch(line)
        if m is None:
            text = line.decode("ascii", "replace").strip()[:60]
            raise RuleFileError(f"{path}:{lineno}: not a ClassBench rule: {text!r}")
        g = m.groups()
        try:
            src = _prefix(g[0:4], g[4], "source")
            dst = _prefix(g[5:9], g[9], "destination")
            sport = _ports(g[10], g[11], "source")
            dport = _ports(g[12], g[13], "destination")
        except ValueError as e:
            raise RuleFileError(f"{path}:{lineno}: {e}") from None
        rows.append((*src, *dst, *sport, *dport, int(g[14], 16), int(g[15], 16)))
    rules = np.array(rows, dtype=np.int64).reshape(-1, 10)
    out = np.zeros(len(rows), RULE_V4_DTYPE)
    for i, name in enumerate(RULE_V4_DTYPE.names or ()):
        out[name] = rules[:, i]
    return RuleSet(out, 4)


def read_classbench_trace(path: str | Path) -> np.ndarray:
    """ClassBench trace (5 to 7 decimal columns) -> PACKET_V4_DTYPE array; extra columns ignored.

    Vectorised: the bytes are scanned once with numpy for token and line boundaries (every
    non-blank line must have the same 5..7 tokens) and parsed by np.fromstring; any mismatch
    falls back to a line-by-line scan that names the first bad line.
    """
    data = _read(path, TraceFileError)
    raw = np.frombuffer(data, np.uint8)
    space = (raw == 32) | (raw == 9) | (raw == 10) | (raw == 13) | (raw == 11) | (raw == 12)
    starts = np.flatnonzero(~space & np.r_[True, space[:-1]])
    if starts.size == 0:
        return np.zeros(0, PACKET_V4_DTYPE)
    line_of = np.searchsorted(np.flatnonzero(raw == 10), starts)
    per_line = np.bincount(line_of)
    per_line = per_line[per_line > 0]
    width = int(per_line[0])
    if not 5 <= width <= 7 or (per_line != width).any():
        raise TraceFileError(_first_bad_trace_line(path, data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "could not be read to its end"
        try:
            values = np.fromstring(data, dtype=np.int64, sep=" ")
        except ValueError:
            values = np.zeros(0, np.int64)
    if values.size != starts.size:
        raise TraceFileError(_first_bad_trace_line(path, data))
    values = values.reshape(-1, width)[:, :5]
    limits = np.array([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 0xFFFF, 0xFF])
    if ((values < 0) | (values > limits)).any():
        raise TraceFileError(_first_bad_trace_line(path, data))
    out = np.empty(values.shape[0], PACKET_V4_DTYPE)
    for i, name in enumerate(("src", "dst", "sport", "dport", "proto")):
        out[name] = values[:, i]
    return out


def _first_bad_trace_line(path: str | Path, data: bytes) -> str:
    """The slow path of the reader: locate and describe the first bad line."""
    limits = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 0xFFFF, 0xFF)
    width = None
    for lineno, line in enumerate(data.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if width is None:
            width = len(parts)
        if not 5 <= len(parts) <= 7 or len(parts) != width:
            return (
                f"{path}:{lineno}: expected {width if 5 <= width <= 7 else '5 to 7'} "
                f"columns, found {len(parts)}"
            )
        for value, limit in zip(parts, limits, strict=False):
            if not value.isdigit() or int(value) > limit:
                text = value.decode("ascii", "replace")[:20]
                return f"{path}:{lineno}: bad value {text!r} (expected 0..{limit})"
    return f"{path}: unreadable trace"


def read_firstmatch(path: str | Path) -> np.ndarray:
    """A `.firstmatch` file (one rule index or -1 per line) -> int32 array."""
    data = _read(path, TraceFileError)
    tokens = data.split()
    if not all(re.fullmatch(rb"-?\d+", t) for t in tokens):
        for lineno, line in enumerate(data.splitlines(), start=1):
            if line.strip() and not re.fullmatch(rb"\s*-?\d+\s*", line):
                raise TraceFileError(f"{path}:{lineno}: expected one integer per line")
    return np.array(tokens, dtype=np.bytes_).astype(np.int32) if tokens else np.zeros(0, np.int32)
