"""Generic first-match packet classification: rules in priority order, batches of packets.

The facade of the classifier core: it validates and converts, `classifier.compiler` builds
the tables (`classifier.tables` is the design note of the structure), and the lookup kernel
(`classifier._lookup`, or its twin `_lookup_py`, chosen when a matcher is compiled) walks them.

ClassBench files::

    from classifier import acl
    rules = acl.read_classbench_rules(path)     # RuleSet, len(rules) == rule lines
    trace = acl.read_classbench_trace(path)     # structured array: src, dst, sport, dport, proto
    matcher = acl.compile(rules)
    hits = matcher.match(trace)                 # int32: first matching rule (0-based) or -1
    matcher.memory_bytes                        # bytes held by the compiled structure

Programmatic rules (the security-group engine)
----------------------------------------------
A rule set is a numpy structured array, one row per rule, row index = priority (0 first):

* `RULE_V4_DTYPE`: src_lo/src_hi, dst_lo/dst_hi (uint32 addresses, inclusive ranges: any range,
  not only prefixes, matched exactly), sport_lo/sport_hi, dport_lo/dport_hi (uint32, inclusive),
  proto/proto_mask (uint8: a packet matches when proto & mask == rule.proto & mask; mask 0 = any).
* `RULE_V6_DTYPE`: the same with 128-bit addresses as two uint64 words, most significant first
  (field shape (2,)).

`wildcard_rules(n, version)` returns n rows matching everything, to be narrowed field by field;
`RuleRows(version).add(src=(lo, hi), dport=(lo, hi), proto=6, proto_mask=0xFF)` builds the same
row by row from Python integers (omitted fields stay wildcards), and `compile()` takes either.
Ports are uint32 keys: the wildcard is [0, PORT_MAX]; a packet whose ports are unknown carries
`PORT_UNKNOWN` (0x10000), which every range within 0..65535 excludes and the wildcard includes.
ICMP type/code can ride in dport (the security-group engine uses 0x20000 + type * 512 + code,
so that a type-only rule is one range and a packet with an unknown code can be told apart).

Packets are columns (a structured array, or any mapping name -> array), `n` rows each:

* IPv4 matcher: src, dst as uint32 (host order), or (n, 16) uint8 big-endian rows
  (IPv4-mapped, as in `classifier.packets`: bytes 12..15 are used); sport, dport as unsigned
  integers <= 0xFFFFFFFF; proto as integers 0..255.
* IPv6 matcher: src, dst as (n, 2) uint64 (most significant word first) or (n, 16) uint8
  big-endian rows; sport, dport, proto as above.

`match()` returns int32: the index of the first rule matching all five fields, -1 for none.
`match_columns(src, dst=None, sport=None, dport=None, proto=None)` takes the columns directly;
an omitted column is zeros (fine for a field every rule leaves as a wildcard).
Building a 10-rule set takes about a millisecond, so hundreds of small sets are cheap; matchers
pickle (plain numpy arrays) and report `memory_bytes`.  The lookup runs without the GIL and
never writes the tables, so one matcher may serve several threads.

Errors (all `ClassifierError`): `RuleFileError` / `TraceFileError` name the file and line of a
bad ClassBench file; `AclError` covers bad arrays and empty ranges; `RuleSetTooLarge` refuses a
rule set whose build would exhaust memory.  The compiled twin or the pure-Python one
(`CLASSIFIER_NO_EXTENSIONS=1`) is chosen when a matcher is compiled.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier import _twins
from classifier.compiler import (
    PORT_MAX,
    PORT_UNKNOWN,
    RULE_V4_DTYPE,
    RULE_V6_DTYPE,
    RuleSetTooLarge,
    build,
)
from classifier.errors import ClassifierError
from classifier.tables import AclTables

__all__ = [
    "PACKET_V4_DTYPE",
    "PACKET_V6_DTYPE",
    "PORT_ANY_HI",
    "PORT_MAX",
    "PORT_UNKNOWN",
    "RULE_V4_DTYPE",
    "RULE_V6_DTYPE",
    "AclError",
    "Matcher",
    "RuleFileError",
    "RuleRows",
    "RuleSet",
    "RuleSetTooLarge",
    "TraceFileError",
    "compile",
    "read_classbench_rules",
    "read_classbench_trace",
    "read_firstmatch",
    "wildcard_rules",
]

PORT_ANY_HI = PORT_MAX  # the name the security-group engine uses

PACKET_V4_DTYPE = np.dtype([
    ("src", np.uint32), ("dst", np.uint32), ("sport", np.uint32), ("dport", np.uint32),
    ("proto", np.uint8),
])
PACKET_V6_DTYPE = np.dtype([
    ("src", np.uint64, (2,)), ("dst", np.uint64, (2,)), ("sport", np.uint32),
    ("dport", np.uint32), ("proto", np.uint8),
])


class AclError(ClassifierError):
    """Rules or packets the classifier cannot take (bad arrays, bad ranges)."""


class RuleFileError(AclError):
    """A ClassBench rule file that cannot be read; names the file and line."""


class TraceFileError(AclError):
    """A ClassBench trace (or .firstmatch) file that cannot be read; names the file and line."""


# --- rule sets -------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RuleSet:
    """Rules in priority order: a RULE_V4_DTYPE or RULE_V6_DTYPE array and its family."""

    rules: np.ndarray
    version: int = 4

    def __len__(self) -> int:
        return int(self.rules.shape[0])

    @classmethod
    def from_array(cls, rules: np.ndarray) -> RuleSet:
        rules = np.asarray(rules)
        if rules.dtype == RULE_V4_DTYPE:
            return cls(np.ascontiguousarray(rules).reshape(-1), 4)
        if rules.dtype == RULE_V6_DTYPE:
            return cls(np.ascontiguousarray(rules).reshape(-1), 6)
        raise AclError(f"rule array has dtype {rules.dtype}; expected RULE_V4_DTYPE or "
                       "RULE_V6_DTYPE")


class RuleRows:
    """A rule list built row by row from Python integers (the security-group engine's path).

    `add()` appends one rule below the previous ones (lower priority); every field defaults to
    its wildcard.  Addresses are inclusive (lo, hi) integer ranges (128-bit for IPv6), ports
    inclusive uint32 ranges, proto/proto_mask as in RULE_V4_DTYPE.  `compile(rows)` takes it.
    """

    def __init__(self, version: int = 4):
        if version not in (4, 6):
            raise AclError(f"IP version must be 4 or 6, not {version}")
        self.version = version
        self._address_max = (1 << (32 if version == 4 else 128)) - 1
        self._rows: list[tuple[int, ...]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, src: tuple[int, int] | None = None, dst: tuple[int, int] | None = None,
            sport: tuple[int, int] | None = None, dport: tuple[int, int] | None = None,
            proto: int = 0, proto_mask: int = 0) -> int:
        """Append a rule; returns its index (its priority, 0 first)."""
        values = [*(src or (0, self._address_max)), *(dst or (0, self._address_max)),
                  *(sport or (0, PORT_MAX)), *(dport or (0, PORT_MAX)), proto, proto_mask]
        limits = [self._address_max] * 4 + [PORT_MAX] * 4 + [0xFF, 0xFF]
        names = ("src", "src", "dst", "dst", "sport", "sport", "dport", "dport", "proto",
                 "proto_mask")
        for value, limit, name in zip(values, limits, names, strict=True):
            if not 0 <= int(value) <= limit:
                raise AclError(f"rule {len(self._rows)}: {name} value {value} outside 0..{limit}")
        self._rows.append(tuple(int(v) for v in values))
        return len(self._rows) - 1

    def to_array(self) -> np.ndarray:
        """The rows as a RULE_V4_DTYPE / RULE_V6_DTYPE array."""
        rules = wildcard_rules(len(self._rows), self.version)
        if not self._rows:
            return rules
        if self.version == 4:
            table = np.array(self._rows, dtype=np.uint64)
            for i, name in enumerate(RULE_V4_DTYPE.names or ()):
                rules[name] = table[:, i]
            return rules
        mask = (1 << 64) - 1
        for i, name in enumerate(("src_lo", "src_hi", "dst_lo", "dst_hi")):
            rules[name] = [(row[i] >> 64, row[i] & mask) for row in self._rows]
        table = np.array([row[4:] for row in self._rows], dtype=np.uint64)
        for i, name in enumerate(("sport_lo", "sport_hi", "dport_lo", "dport_hi", "proto",
                                  "proto_mask")):
            rules[name] = table[:, i]
        return rules


def wildcard_rules(n: int, version: int = 4) -> np.ndarray:
    """n rules that match every packet (narrow them field by field)."""
    if version not in (4, 6):
        raise AclError(f"IP version must be 4 or 6, not {version}")
    rules = np.zeros(n, RULE_V4_DTYPE if version == 4 else RULE_V6_DTYPE)
    if version == 4:
        rules["src_hi"] = rules["dst_hi"] = 0xFFFFFFFF
    else:
        rules["src_hi"] = rules["dst_hi"] = np.uint64(0xFFFFFFFFFFFFFFFF)
    rules["sport_hi"] = rules["dport_hi"] = PORT_MAX
    return rules


def _validate(rules: RuleSet) -> None:
    r = rules.rules
    checks = [("sport", r["sport_lo"] > r["sport_hi"]), ("dport", r["dport_lo"] > r["dport_hi"])]
    for name in ("src", "dst"):
        lo, hi = r[name + "_lo"], r[name + "_hi"]
        if rules.version == 4:
            checks.append((name, lo > hi))
        else:
            checks.append((name, (lo[:, 0] > hi[:, 0]) | ((lo[:, 0] == hi[:, 0])
                                                         & (lo[:, 1] > hi[:, 1]))))
    for name, bad in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AclError(f"rule {i}: {name} range is empty (lo > hi)")


# --- the matcher -----------------------------------------------------------------------

class Matcher:
    """A compiled rule set: `match()` batches of packets.  Picklable; read-only after build."""

    def __init__(self, tables: AclTables, lookup_module: str):
        self.tables = tables
        self._lookup_module = lookup_module  # a name, so the matcher pickles

    @property
    def version(self) -> int:
        return self.tables.version

    @property
    def n_rules(self) -> int:
        return self.tables.n_rules

    def __len__(self) -> int:
        return self.tables.n_rules

    @property
    def memory_bytes(self) -> int:
        return self.tables.memory_bytes

    def match(self, packets: Mapping[str, Any] | np.ndarray) -> np.ndarray:
        """First-match rule index of each packet (int32, -1 for none); see the module doc."""
        try:
            columns = [packets[name] for name in ("src", "dst", "sport", "dport", "proto")]
        except (KeyError, ValueError, IndexError, TypeError) as error:
            raise AclError("packets need columns src, dst, sport, dport, proto") from error
        return self.match_columns(*columns)

    def match_columns(self, src: Any, dst: Any = None, sport: Any = None, dport: Any = None,
                      proto: Any = None) -> np.ndarray:
        """Like match(), one column per argument; an omitted column is all zeros (which the
        wildcard of that field contains: omit only fields the rules leave unrestricted)."""
        src = np.asarray(src)
        if src.ndim == 0:
            raise AclError("packet column src must be an array, not a scalar")
        n = src.shape[0]
        zeros = np.zeros(n, np.uint32)
        dst = zeros if dst is None else dst
        if dst is zeros and self.version == 6:
            dst = np.zeros((n, 2), np.uint64)
        keys = self._keys(src, dst, zeros if sport is None else sport,
                          zeros if dport is None else dport, zeros if proto is None else proto)
        out = np.empty(keys.shape[1], np.int32)
        t = self.tables
        try:
            lookup = importlib.import_module(self._lookup_module)
        except ImportError:  # unpickled where the extension is not built: the twin
            lookup = importlib.import_module("classifier._lookup_py")
        kernel = lookup.match_v4 if t.version == 4 else lookup.match_v6
        kernel(t.field, t.group, t.tree, t.gtab, t.summary, t.rank, t.words, t.rule_of,
               t.identity, keys, out)
        return out

    def _keys(self, src: Any, dst: Any, sport: Any, dport: Any, proto: Any) -> np.ndarray:
        sport_a = _unsigned(sport, "sport", 0xFFFFFFFF)
        n = sport_a.shape[0]
        cols = [_unsigned(dport, "dport", 0xFFFFFFFF), _unsigned(proto, "proto", 0xFF)]
        if self.version == 4:
            keys = np.empty((5, n), np.uint32)
            keys[0] = _address_v4(src, "src", n)
            keys[1] = _address_v4(dst, "dst", n)
            rest = 2
        else:
            keys = np.empty((7, n), np.uint64)
            keys[0:2] = _address_v6(src, "src", n).T
            keys[2:4] = _address_v6(dst, "dst", n).T
            rest = 4
        keys[rest] = sport_a
        for i, col in enumerate(cols, start=rest + 1):
            if col.shape != (n,):
                raise AclError(f"packet columns differ in length ({col.shape[0]} != {n})")
            keys[i] = col
        return keys


def _unsigned(values: Any, name: str, limit: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or a.dtype.kind not in "ui":
        raise AclError(f"packet column {name} must be a 1-D integer array, not {a.dtype}{a.shape}")
    if a.size and (a.dtype.kind == "i" or a.dtype.itemsize * 8 > limit.bit_length()):
        if int(a.min()) < 0 or int(a.max()) > limit:
            raise AclError(f"packet column {name} has values outside 0..{limit}")
    return a


def _address_v4(values: Any, name: str, n: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] == 16 and a.dtype == np.uint8:
        a = np.ascontiguousarray(a[:, 12:16]).view(">u4").reshape(-1)
    else:
        a = _unsigned(a, name, 0xFFFFFFFF)
    if a.shape != (n,):
        raise AclError(f"packet column {name} has {a.shape[0]} rows, expected {n}")
    return a


def _address_v6(values: Any, name: str, n: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] == 16 and a.dtype == np.uint8:
        a = np.ascontiguousarray(a).view(">u8").astype(np.uint64)
    elif not (a.ndim == 2 and a.shape[1] == 2 and a.dtype == np.uint64):
        raise AclError(f"packet column {name} must be (n, 2) uint64 or (n, 16) uint8 for IPv6")
    if a.shape[0] != n:
        raise AclError(f"packet column {name} has {a.shape[0]} rows, expected {n}")
    return a


def compile(rules: RuleSet | RuleRows | np.ndarray) -> Matcher:
    """Compile rules (priority order) into a matcher."""
    if isinstance(rules, RuleRows):
        rules = RuleSet(rules.to_array(), rules.version)
    ruleset = rules if isinstance(rules, RuleSet) else RuleSet.from_array(rules)
    _validate(ruleset)
    module = _twins.load("_lookup")
    return Matcher(build(ruleset.rules, ruleset.version), module.__name__)


# --- ClassBench files ------------------------------------------------------------------

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
            return f"{path}:{lineno}: expected {width if 5 <= width <= 7 else '5 to 7'} " \
                   f"columns, found {len(parts)}"
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
