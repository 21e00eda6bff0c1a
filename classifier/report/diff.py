"""`sgclassify diff`: what a policy change would change on recorded traffic.

The contract is docs/outputs.md ("Policy diff"). The captures are decoded once and every
batch is classified twice, by two `classifier.engine.Classification`s (OLD and NEW), each
with its own connection state, so every packet gets exactly the row `classify` would give it
under either policy. A packet *changes* when its two verdicts differ; it counts as a
*connection* when it created one under OLD or NEW.

Decode once, classify twice: connection tracking's fragment joining writes into the batch
(`classifier.engine.conntrack.JOIN_WRITES`, in the rows of non-first fragments only). A batch
with non-first fragments is therefore given to NEW with its own copy of those columns, taken
before OLD joins it; a batch without any (the common case, checked in one pass over the
`fragment` column) is shared as it is, since joining leaves it untouched.

`DiffBuilder.add(old, new)` folds one batch pair in, vectorised (a few numpy passes over the
batch, and `np.unique` over its changed rows only): totals, changed packets, the transitions
(old verdict, new verdict) and the groups of deciding rows, each kept in the order of its
first changed packet, with that packet as its example. Memory: one entry per distinct
transition and group, whatever the capture's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classifier.codes import FRAGMENT_LATER, REASON_NAMES, VERDICT_NAMES
from classifier.engine import BatchResult, Classification, Engine
from classifier.engine.columns import INT, TEXT, Labelled, Labels, verdict_columns
from classifier.engine.conntrack import JOIN_WRITES
from classifier.errors import ClassifierError
from classifier.packets import PacketBatch, address_labels, has_ip, own_fields
from classifier.pcap import DEFAULT_BATCH_SIZE, open_capture

# the columns of `diff --packets`, in order
ROW_FIELDS = ("verdict", "reason", "instance", "direction", "group", "rule")
DIFF_PACKET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file", TEXT),
    ("index", INT),
    *((f"old_{name}", TEXT) for name in ROW_FIELDS),
    *((f"new_{name}", TEXT) for name in ROW_FIELDS),
)


def _rule_keys(engine: Engine) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each rule position (+1; 0 = no rule) -> one code per distinct (group, rule id) pair (a
    comma-list rule expands into several entries that share one id), and the pairs."""
    pairs: dict[tuple[str, str], int] = {}
    codes = [0]
    for rule in engine.rules:
        codes.append(pairs.setdefault((rule.group_id, rule.id), len(pairs) + 1))
    return np.array(codes, np.int64), list(pairs)


@dataclass
class _Counts:
    packets: int = 0
    bytes: int = 0
    connections: int = 0

    def json(self) -> dict[str, int]:
        return {"packets": self.packets, "bytes": self.bytes, "connections": self.connections}


@dataclass
class _Group:
    old: dict[str, str | None]
    new: dict[str, str | None]
    example: dict[str, Any]
    counts: _Counts = field(default_factory=_Counts)


class DiffBuilder:
    """The diff of two classifications of the same batches, batch pair by batch pair."""

    def __init__(self, old: Engine, new: Engine):
        self.old_rules, self.old_pairs = _rule_keys(old)
        self.new_rules, self.new_pairs = _rule_keys(new)
        self.packets = 0
        self.bytes = 0
        self.changed = _Counts()
        self.transitions: dict[tuple[int, int], _Counts] = {}
        self.groups: dict[int, _Group] = {}
        self._new_width = 8 * 8 * (len(self.new_pairs) + 1)

    def add(self, old: BatchResult, new: BatchResult) -> np.ndarray:
        """Fold one batch in; returns the positions of its changed packets."""
        batch = old.batch
        wire = batch.wire_len.astype(np.int64)
        self.packets += len(batch)
        self.bytes += int(wire.sum())
        rows = np.flatnonzero(old.verdict != new.verdict)
        if not len(rows):
            return rows
        wire = wire[rows]
        made = ((old.created[rows] != 0) | (new.created[rows] != 0)).astype(np.int64)
        self.changed.packets += len(rows)
        self.changed.bytes += int(wire.sum())
        self.changed.connections += int(made.sum())
        old_verdict = old.verdict[rows].astype(np.int64)
        new_verdict = new.verdict[rows].astype(np.int64)
        self._fold(
            old_verdict * 8 + new_verdict,
            wire,
            made,
            lambda key, first: self.transitions.setdefault(
                (int(key) // 8, int(key) % 8), _Counts()
            ),
        )
        old_row = (old_verdict * 8 + old.reason[rows]) * (len(self.old_pairs) + 1) + (
            self.old_rules[old.rule[rows].astype(np.int64) + 1]
        )
        new_row = (new_verdict * 8 + new.reason[rows]) * (len(self.new_pairs) + 1) + (
            self.new_rules[new.rule[rows].astype(np.int64) + 1]
        )
        self._fold(
            old_row * self._new_width + new_row,
            wire,
            made,
            lambda key, first: self._group(int(key), old, int(rows[first])).counts,
        )
        return rows

    @staticmethod
    def _fold(
        keys: np.ndarray,
        wire: np.ndarray,
        made: np.ndarray,
        entry: Callable[[int, int], _Counts],
    ) -> None:
        """Add the counts of each distinct key, new keys in the order of their first row."""
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        packets = np.bincount(inverse, minlength=len(unique))
        size = np.bincount(inverse, weights=wire, minlength=len(unique))
        connections = np.bincount(inverse, weights=made, minlength=len(unique))
        for j in np.argsort(first, kind="stable").tolist():
            counts = entry(int(unique[j]), int(first[j]))
            counts.packets += int(packets[j])
            counts.bytes += int(size[j])
            counts.connections += int(connections[j])

    def _group(self, key: int, old: BatchResult, row: int) -> _Group:
        group = self.groups.get(key)
        if group is None:
            old_row, new_row = divmod(key, self._new_width)
            group = _Group(
                self._row(old_row, self.old_pairs),
                self._row(new_row, self.new_pairs),
                example(old.file, old.batch, row),
            )
            self.groups[key] = group
        return group

    @staticmethod
    def _row(code: int, pairs: list[tuple[str, str]]) -> dict[str, str | None]:
        head, pair = divmod(code, len(pairs) + 1)
        verdict, reason = divmod(head, 8)
        group, rule = pairs[pair - 1] if pair else (None, None)
        return {
            "verdict": VERDICT_NAMES[verdict],
            "reason": REASON_NAMES[reason] or None,
            "group": group,
            "rule": rule,
        }

    def document(self, old: str, new: str, stateful: bool) -> dict[str, Any]:
        """The `--json` document: these keys, in this order, and no others."""
        return {
            "old": old,
            "new": new,
            "mode": "stateful" if stateful else "stateless",
            "packets": self.packets,
            "bytes": self.bytes,
            "changed": self.changed.json(),
            "transitions": [
                {"old": VERDICT_NAMES[a], "new": VERDICT_NAMES[b], **counts.json()}
                for (a, b), counts in self.transitions.items()
            ],
            "groups": [
                {"old": g.old, "new": g.new, **g.counts.json(), "example": g.example}
                for g in self.groups.values()
            ],
        }


def example(file: str, batch: PacketBatch, row: int) -> dict[str, Any]:
    """A packet as the diff's `example`: its file, index, addresses, protocol and own ports."""
    one = batch.slice(row, row + 1)
    own = own_fields(one)
    ip = has_ip(one)
    src_codes, src_labels = address_labels(one.src, one.ip_version, ip)
    dst_codes, dst_labels = address_labels(one.dst, one.ip_version, ip)

    def number(name: str) -> int | None:
        value = int(own[name][0])
        return value if value >= 0 else None

    return {
        "file": file,
        "index": int(one.index[0]),
        "src": str(src_labels[src_codes[0]]) or None,
        "dst": str(dst_labels[dst_codes[0]]) or None,
        "protocol": number("protocol"),
        "sport": number("sport"),
        "dport": number("dport"),
    }


def changed_rows(
    old: BatchResult, new: BatchResult, rows: np.ndarray, old_labels: Labels, new_labels: Labels
) -> dict[str, np.ndarray | Labelled]:
    """The `diff --packets` rows (`DIFF_PACKET_COLUMNS`) of one batch's changed packets."""
    table: dict[str, np.ndarray | Labelled] = {
        "file": (np.zeros(len(rows), np.int64), np.array([old.file], dtype=object)),
        "index": old.batch.index[rows].astype(np.int64),
    }
    for prefix, result, labels in (("old", old, old_labels), ("new", new, new_labels)):
        columns = verdict_columns(
            labels,
            result.verdict[rows],
            result.reason[rows],
            result.instance[rows],
            result.direction[rows],
            result.rule[rows],
        )
        table.update({f"{prefix}_{name}": columns[name] for name in ROW_FIELDS})
    return table


def _own_copy(batch: PacketBatch) -> PacketBatch:
    """The batch for the second classification: the columns fragment joining writes are
    copied when the batch holds a non-first fragment (else joining writes nothing)."""
    if not np.any(batch.fragment == FRAGMENT_LATER):
        return batch
    columns = batch.columns()
    for name in JOIN_WRITES:
        columns[name] = columns[name].copy()
    return PacketBatch(**columns)


@dataclass
class CaptureFile:
    """One capture of a diff run: what the summary's `files` says of a classify run."""

    path: str
    status: str = "not read"
    packets: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class DiffStep:
    """One batch of a diff run: both results, and the positions of the changed packets."""

    old: BatchResult
    new: BatchResult
    changed: np.ndarray


class PolicyDiff:
    """Decode the captures once, classify them under both policies, fold in the changes."""

    def __init__(
        self,
        old: Engine,
        new: Engine,
        stateful: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        self.stateful = stateful
        self.batch_size = batch_size
        self.old = Classification(old, stateful, batch_size, summarize=False)
        self.new = Classification(new, stateful, batch_size, summarize=False)
        self.builder = DiffBuilder(old, new)
        self.files: list[CaptureFile] = []

    def classify_batch(self, batch: PacketBatch, file: str = "", file_number: int = 0) -> DiffStep:
        """One batch under both policies, in capture order, folded into the diff."""
        second = _own_copy(batch) if self.stateful else batch
        old = self.old.classify_batch(batch, file, file_number)
        new = self.new.classify_batch(second, file, file_number)
        return DiffStep(old, new, self.builder.add(old, new))

    def run(
        self,
        paths: Sequence[str],
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Iterator[DiffStep]:
        self.files = [CaptureFile(str(path)) for path in paths]
        for number, file in enumerate(self.files):
            try:
                capture = open_capture(file.path)
            except ClassifierError as error:
                file.status, file.warnings = "unreadable", [str(error)]
                raise
            file.status = "interrupted"
            with capture:
                try:
                    for batch in capture.batches(self.batch_size):
                        file.packets += len(batch)
                        yield self.classify_batch(batch, file.path, number)
                        if progress is not None:
                            progress(file.path, capture.position, capture.size)
                    file.status = "damaged" if capture.damaged else "ok"
                finally:
                    file.warnings = list(capture.warnings)
                    if file.status == "ok" and file.packets == 0:
                        file.warnings.append(f"{file.path}: the capture holds no records")
