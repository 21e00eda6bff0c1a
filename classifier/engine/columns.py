"""The per-packet result columns of the engine and the pipeline, and what a batch engine is.

`StatelessVerdicts` is what the engine's run phase returns for a batch (semantics sections 2-3
and 6, before state); `BatchResult` is one batch's final columns after connection tracking.
Codes are those of `classifier.codes`. `BatchEngine` is the one thing the pipeline needs of an
engine, so the pipeline does not import the engine (the engine imports the pipeline for
`Engine.classify_pcap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from classifier.packets import PacketBatch
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
