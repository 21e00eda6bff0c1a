"""The captures of a run as blocks, in capture order: what the driver cuts and hands out.

`plan(paths, blocksize)` opens each capture in turn on the driver (so that a capture the
command cannot read fails as it does in one process), frames it without decoding
(`Capture.cut`) and yields its `Block`s, then a `FileDone` with the file's facts as one
process's read would have left them (records, warnings in their order, damage). Only the
reader's state and byte offsets travel to the workers, never capture bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from classifier.pcap import DEFAULT_BATCH_SIZE, open_capture
from classifier.scale.tasks import Block


@dataclass(frozen=True)
class FileDone:
    """A capture's facts, after its last block (`SummaryBuilder.add_file` takes them)."""

    file_number: int
    path: str
    packets: int
    warnings: tuple[str, ...]
    damaged: bool
    size: int


def plan(
    paths: Iterable[str], blocksize: int, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[Block | FileDone]:
    """Every block of every capture, then each capture's facts, in capture order. A capture
    that cannot be opened raises its PcapError when its turn comes."""
    number = 0
    for file_number, path in enumerate(paths):
        location = os.path.abspath(path)
        with open_capture(path) as capture:
            for cut in capture.cut(blocksize, batch_size):
                yield Block(
                    number, file_number, path, location, cut.state, cut.start, cut.end,
                    cut.first, cut.records, capture.size,
                )  # fmt: skip
                number += 1
            yield FileDone(
                file_number,
                path,
                capture.records,
                tuple(capture.warnings),
                bool(capture.damaged),
                capture.size,
            )
