"""Rule sets in, matchers out: the facade of the first-match core.

`RuleSet` / `RuleRows` / `wildcard_rules` hold rules in priority order; `compile()` validates
them and builds a `Matcher` (`classifier.acl.build`); `Matcher.match` converts packet columns
to the kernel's keys and runs the lookup (`classifier.acl.kernels`). The package docstring
(`classifier.acl`) describes the rule and packet layouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.acl.build import (
    PORT_MAX,
    RULE_V4_DTYPE,
    RULE_V6_DTYPE,
    build,
)
from classifier.acl.kernels import lookup_kernels
from classifier.acl.tables import AclTables
from classifier.errors import ClassifierError

PORT_ANY_HI = PORT_MAX  # the name the security-group engine uses

PACKET_V4_DTYPE = np.dtype(
    [
        ("src", np.uint32),
        ("dst", np.uint32),
        ("sport", np.uint32),
        ("dport", np.uint32),
        ("proto", np.uint8),
    ]
)
PACKET_V6_DTYPE = np.dtype(
    [
        ("src", np.uint64, (2,)),
        ("dst", np.uint64, (2,)),
        ("sport", np.uint32),
        ("dport", np.uint32),
        ("proto", np.uint8),
    ]
)


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
        raise AclError(
            f"rule array has dtype {rules.dtype}; expected RULE_V4_DTYPE or RULE_V6_DTYPE"
        )


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

    def add(
        self,
        src: tuple[int, int] | None = None,
        dst: tuple[int, int] | None = None,
        sport: tuple[int, int] | None = None,
        dport: tuple[int, int] | None = None,
        proto: int = 0,
        proto_mask: int = 0,
    ) -> int:
        """Append a rule; returns its index (its priority, 0 first)."""
        values = [
            *(src or (0, self._address_max)),
            *(dst or (0, self._address_max)),
            *(sport or (0, PORT_MAX)),
            *(dport or (0, PORT_MAX)),
            proto,
            proto_mask,
        ]
        limits = [self._address_max] * 4 + [PORT_MAX] * 4 + [0xFF, 0xFF]
        names = (
            "src",
            "src",
            "dst",
            "dst",
            "sport",
            "sport",
            "dport",
            "dport",
            "proto",
            "proto_mask",
        )
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
        for i, name in enumerate(
            ("sport_lo", "sport_hi", "dport_lo", "dport_hi", "proto", "proto_mask")
        ):
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
            checks.append(
                (name, (lo[:, 0] > hi[:, 0]) | ((lo[:, 0] == hi[:, 0]) & (lo[:, 1] > hi[:, 1])))
            )
    for name, bad in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AclError(f"rule {i}: {name} range is empty (lo > hi)")


# --- the matcher -----------------------------------------------------------------------


class Matcher:
    """A compiled rule set: `match()` batches of packets.  Picklable; read-only after build."""

    def __init__(self, tables: AclTables):
        self.tables = tables

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

    def match_columns(
        self, src: Any, dst: Any = None, sport: Any = None, dport: Any = None, proto: Any = None
    ) -> np.ndarray:
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
        keys = self._keys(
            src,
            dst,
            zeros if sport is None else sport,
            zeros if dport is None else dport,
            zeros if proto is None else proto,
        )
        out = np.empty(keys.shape[1], np.int32)
        t = self.tables
        kernel = lookup_kernels.match_v4 if t.version == 4 else lookup_kernels.match_v6
        kernel(
            t.field,
            t.group,
            t.tree,
            t.gtab,
            t.summary,
            t.rank,
            t.words,
            t.rule_of,
            t.identity,
            keys,
            out,
        )
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
    return Matcher(build(ruleset.rules, ruleset.version))
