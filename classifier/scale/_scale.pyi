"""Stub of the compiled classifier.scale._scale (twin: classifier.scale._scale_py)."""

import numpy as np

def row_lanes(
    ip_version: np.ndarray,
    protocol: np.ndarray,
    l4: np.ndarray,
    icmp_type: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    inner_src: np.ndarray,
    inner_dst: np.ndarray,
    lanes: int,
    lane: np.ndarray,
) -> None: ...
