"""Stub of the compiled classifier.acl._lookup (twin: classifier.acl._lookup_py)."""

import numpy as np

def isa() -> str: ...
def cap_isa(name: str | None) -> None: ...
def match_v4(
    field: np.ndarray,
    group: np.ndarray,
    tree: np.ndarray,
    gtab: np.ndarray,
    summary: np.ndarray,
    rank: np.ndarray,
    words: np.ndarray,
    rule_of: np.ndarray,
    identity: bool,
    keys: np.ndarray,
    out: np.ndarray,
) -> None: ...
def match_v6(
    field: np.ndarray,
    group: np.ndarray,
    tree: np.ndarray,
    gtab: np.ndarray,
    summary: np.ndarray,
    rank: np.ndarray,
    words: np.ndarray,
    rule_of: np.ndarray,
    identity: bool,
    keys: np.ndarray,
    out: np.ndarray,
) -> None: ...
