"""The scale-out's options (scale.md section 1): their checks, and the optional dependency.

Nothing here imports Dask: `require_dask()` does, when a run asks for a cluster, and turns
its absence into one line naming the extra to install.
"""

from __future__ import annotations

import re
from typing import Any

from classifier.errors import UsageError

DEFAULT_BLOCKSIZE = 64 * 2**20
MAX_WORKERS = 256
SCHEDULER_TIMEOUT_S = 10.0  # a scheduler that does not answer this long is lost
INSTALL_HINT = "pip install 'sg-classifier[dask]'"
_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
_ADDRESS = re.compile(r"(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def parse_blocksize(text: str) -> int:
    """`64M`, `512K`, `1G`, `1000`: bytes (powers of 1024), at least 1."""
    match = re.fullmatch(r"([0-9]{1,15})([KMG]?)", text.strip()) if text.isascii() else None
    if match is None or int(match.group(1)) < 1:
        raise UsageError(
            f"--blocksize {text!r}: give a positive size in bytes, with an optional suffix "
            "K, M or G (powers of 1024), e.g. 64M"
        )
    return int(match.group(1)) * _SUFFIXES[match.group(2)]


def parse_address(text: str) -> str:
    """`[tcp://]host:port` -> `tcp://host:port`."""
    match = _ADDRESS.fullmatch(text.strip()) if text.isascii() else None
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise UsageError(
            f"--scheduler {text!r}: give the scheduler's address as [tcp://]host:port, "
            "e.g. tcp://10.0.0.5:8786"
        )
    return f"tcp://{match.group(1)}:{int(match.group(2))}"


def check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise UsageError(f"workers: {workers!r} is not a number of processes (1..{MAX_WORKERS})")
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"workers: {workers} is not a number of processes (1..{MAX_WORKERS})")
    return workers


def check_blocksize(blocksize: Any) -> int:
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise UsageError(f"blocksize: {blocksize!r} is not a positive number of bytes")
    return blocksize


def require_dask(what: str = "a run on a cluster") -> Any:
    """The `distributed` module, or a UsageError naming the extra that brings it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(
            f"{what} needs Dask's distributed scheduler, which is not installed: {INSTALL_HINT}"
        ) from None
    return distributed
