"""The per-packet result columns of the engine and the pipeline, and what a batch engine is.

`StatelessVerdicts` is what the engine's run phase returns for a batch (semantics sections 2-3
and 6, before state); `BatchResult` is one batch's final columns after connection tracking.
Codes are those of `classifier.codes`. `BatchEngine` is the one thing the pipeline needs of an
engine, so the pipeline does not import the engine (the engine imports the pipeline for
`Engine.classify_pcap`). `PACKET_COLUMNS` and `packet_table` are the per-packet table of
semantics section 6 (`--packets` and `ClassifyResult.named()`), built from a batch's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from classifier.codes import DIRECTION_NAMES, REASON_NAMES, VERDICT_NAMES
from classifier.packets import PacketBatch, address_labels, has_ip, own_fields
from classifier.policy import Rule


@dataclass
class StatelessVerdicts:
    """Per-packet columns of a batch, before connection tracking (classifier.engine.conntrack)."""

    verdict: np.ndarray  # uint8 VERDICT_*
    reason: np.ndarray  # uint8 REASON_*
    rule: np.ndarray  # int32 global rule index or -1
    instance: np.ndarray  # int32 reported side's instance index or -1
    direction: np.ndarray  # uint8 DIRECTION_*
    new_instance: np.ndarray  # int32 the side reported for a state-allowed packet
    new_direction: np.ndarray  # uint8
    egress_rule: np.ndarray  # int32 the rule that decided the sender's egress side, or -1
    ingress_rule: np.ndarray  # int32 the rule that decided the receiver's ingress side, or -1


@dataclass
class BatchResult:
    """One classified batch: the decoded packets and their final per-packet columns."""

    file: str
    file_number: int  # position of `file` in the list of captures
    batch: PacketBatch
    verdict: np.ndarray  # uint8 codes.VERDICT_*
    reason: np.ndarray  # uint8 REASON_*
    rule: np.ndarray  # int32 global rule index (BatchEngine.rules) or -1
    instance: np.ndarray  # int32 reported side's instance index (BatchEngine.instance_ids) or -1
    direction: np.ndarray  # uint8 DIRECTION_*
    created: np.ndarray  # int8: 1 where the packet created a connection
    midstream: np.ndarray  # int8: 1 where that connection was picked up mid-stream
    egress_rule: np.ndarray  # int32 the rule that decided the egress side (-1: none, or state)
    ingress_rule: np.ndarray  # int32 the rule that decided the ingress side (-1: none, or state)


class BatchEngine(Protocol):
    """A compiled policy that classifies batches statelessly (`classifier.engine.Engine`)."""

    @property
    def rules(self) -> list[Rule]: ...

    @property
    def instance_ids(self) -> list[str]: ...

    def classify(self, batch: PacketBatch) -> StatelessVerdicts: ...


# --- the per-packet table of semantics section 6 ---------------------------------------------

INT, BOOL, TEXT = "int", "bool", "text"

# (name, kind) of every column of the per-packet table (`--packets`, `ClassifyResult.named()`),
# in order; integer columns hold -1 where the field is empty, text columns "".
PACKET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file", TEXT), ("index", INT), ("ts_ns", INT), ("ip_version", INT), ("src", TEXT),
    ("dst", TEXT), ("protocol", INT), ("sport", INT), ("dport", INT), ("icmp_type", INT),
    ("icmp_code", INT), ("wire_len", INT), ("verdict", TEXT), ("reason", TEXT),
    ("instance", TEXT), ("direction", TEXT), ("group", TEXT), ("rule", TEXT),
)  # fmt: skip

# A text column either as an object array of str, or dictionary-encoded as (codes, labels):
# row i is labels[codes[i]] ("" = empty). Ids, names and addresses arrive encoded.
Labelled = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Labels:
    """The text of the codes in result columns: `instance` and `rule` positions, as labels
    whose position 0 is the empty text (so a code c is looked up at c + 1)."""

    instances: np.ndarray  # "" then BatchEngine.instance_ids
    groups: np.ndarray  # "" then each rule's group id, in BatchEngine.rules order
    rules: np.ndarray  # "" then each rule's id

    @classmethod
    def of(cls, instance_ids: list[str], rule_ids: list[str], group_ids: list[str]) -> Labels:
        return cls(
            np.array([""] + list(instance_ids), dtype=object),
            np.array([""] + list(group_ids), dtype=object),
            np.array([""] + list(rule_ids), dtype=object),
        )

    @classmethod
    def of_engine(cls, engine: BatchEngine) -> Labels:
        return cls.of(
            engine.instance_ids, [r.id for r in engine.rules], [r.group_id for r in engine.rules]
        )


def _code_labels(table: tuple[str, ...], codes: np.ndarray) -> Labelled:
    return codes.astype(np.int64), np.array(table, dtype=object)


def verdict_columns(
    labels: Labels,
    verdict: np.ndarray,
    reason: np.ndarray,
    instance: np.ndarray,
    direction: np.ndarray,
    rule: np.ndarray,
) -> dict[str, Labelled]:
    """`verdict`, `reason`, `instance`, `direction`, `group`, `rule` of section 6, encoded."""
    rule_codes = rule.astype(np.int64) + 1
    return {
        "verdict": _code_labels(VERDICT_NAMES, verdict),
        "reason": _code_labels(REASON_NAMES, reason),
        "instance": (instance.astype(np.int64) + 1, labels.instances),
        "direction": _code_labels(DIRECTION_NAMES, direction),
        "group": (rule_codes, labels.groups),
        "rule": (rule_codes, labels.rules),
    }


def packet_table(
    file: str,
    batch: PacketBatch,
    verdict: np.ndarray,
    reason: np.ndarray,
    instance: np.ndarray,
    direction: np.ndarray,
    rule: np.ndarray,
    labels: Labels,
) -> dict[str, np.ndarray | Labelled]:
    """One batch's rows of the per-packet table (`PACKET_COLUMNS`, in order): integer columns
    int64 (-1 = empty), text columns dictionary-encoded. Vectorised: no Python call per row."""
    n = len(batch)
    own = own_fields(batch)
    ip = has_ip(batch)
    version = batch.ip_version
    table: dict[str, np.ndarray | Labelled] = {
        "file": (np.zeros(n, np.int64), np.array([file], dtype=object)),
        "index": batch.index.astype(np.int64),
        "ts_ns": batch.ts_ns.astype(np.int64),
        "ip_version": own["ip_version"],
        "src": address_labels(batch.src, version, ip),
        "dst": address_labels(batch.dst, version, ip),
        "protocol": own["protocol"],
        "sport": own["sport"],
        "dport": own["dport"],
        "icmp_type": own["icmp_type"],
        "icmp_code": own["icmp_code"],
        "wire_len": batch.wire_len.astype(np.int64),
    }
    table.update(verdict_columns(labels, verdict, reason, instance, direction, rule))
    return table


def result_table(result: BatchResult, labels: Labels) -> dict[str, np.ndarray | Labelled]:
    """`packet_table` of one classified batch."""
    return packet_table(
        result.file,
        result.batch,
        result.verdict,
        result.reason,
        result.instance,
        result.direction,
        result.rule,
        labels,
    )


def decoded(column: np.ndarray | Labelled) -> np.ndarray:
    """A table column as a plain array (text: an object array of str)."""
    if isinstance(column, tuple):
        codes, values = column
        return values[codes]
    return column
