"""Stub of the compiled classifier.engine._fused (twin: classifier.engine._fused_py).

Use it through classifier.engine.pipeline.Classification (the fused path, by default).
"""

from typing import Any

import numpy as np

class FusedPolicy:
    n_chunks: int
    n_rules: int
    n_instances: int
    def __init__(self, engine: Any) -> None: ...

def classify_batch(
    policy: FusedPolicy,
    batch: Any,
    tracker: Any,
    verdict: np.ndarray,
    reason: np.ndarray,
    rule: np.ndarray,
    instance: np.ndarray,
    direction: np.ndarray,
    created: np.ndarray,
    midstream: np.ndarray,
    egress_rule: np.ndarray,
    ingress_rule: np.ndarray,
    stats: Any,
    timeline_low: int,
    timeline_shift: int,
    slot_key: np.ndarray,
    slot_index: np.ndarray,
    out_key: np.ndarray,
    out_count: np.ndarray,
    out_row: np.ndarray,
    lane_of: np.ndarray | None = None,
    lane: int = 0,
) -> int: ...
