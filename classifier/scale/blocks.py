"""The captures of a run as blocks, in capture order: what the driver cuts and hands out.

`plan(paths, blocksize)` opens each capture in turn on the driver (so that a capture the
command cannot read fails as it does in one process), frames it without decoding
(`Capture.cut`) and yields its `Block`s, then a `FileDone` with the file's facts as one
process's read would have left them (records, warnings in their order, damage). Only the
reader's state and byte offsets travel to the workers, never capture bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from classifier.errors import ClassifierError, UsageError
from classifier.pcap import DEFAULT_BATCH_SIZE, open_capture
from classifier.scale.tasks import Block

# magic numbers of compressed files: a stream has no positions a worker could seek to
COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ": "xz", b"BZh": "bzip2"}


def refuse_streams(path: str) -> None:
    """Standard input and compressed captures cannot be cut into blocks that workers read
    at a position: one line, exit 2 (one process reads them, where the reader can)."""
    if path == "-":
        raise UsageError(
            "-: standard input cannot be cut into blocks for the workers; save it to a file "
            "or run in one process (without --workers/--scheduler)"
        )
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # open_capture says what is wrong, as in one process
    if not stat.S_ISREG(mode):  # a pipe, a device: read once, never at a position
        raise UsageError(
            f"{path}: not a regular file, so it cannot be cut into blocks for the workers; "
            "save it to a file or run in one process"
        )
    try:
        with open(path, "rb") as stream:
            head = stream.read(6)
    except OSError:
        return
    for magic, name in COMPRESSED.items():
        if head.startswith(magic):
            raise UsageError(
                f"{path}: a {name}-compressed capture cannot be cut into blocks for the "
                "workers; decompress it first or run in one process"
            )


@dataclass(frozen=True)
class FileDone:
    """A capture's facts, after its last block (`SummaryBuilder.add_file` takes them)."""

    file_number: int
    path: str
    packets: int
    warnings: tuple[str, ...]
    damaged: bool
    size: int
    status: str | None = None  # `unreadable` / `not read` (FILE_STATUSES), else by damage


@dataclass(frozen=True)
class Unreadable:
    """A capture that cannot be opened: after its `FileDone` and those of the captures after
    it (listed `unreadable`, `not read`, as in one process), the run raises `error`."""

    error: ClassifierError


def plan(
    paths: Sequence[str], blocksize: int, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[Block | FileDone | Unreadable]:
    """Every block of every capture, then each capture's facts, in capture order. A capture
    that cannot be opened ends the plan: its facts (`unreadable`), those of the captures
    after it (`not read`), then `Unreadable` with its error."""
    number = 0
    for file_number, path in enumerate(paths):
        location = os.path.abspath(path)
        refuse_streams(path)
        try:
            opened = open_capture(path)
        except ClassifierError as error:
            yield FileDone(file_number, path, 0, (str(error),), False, 0, "unreadable")
            for later, other in enumerate(paths[file_number + 1 :], file_number + 1):
                yield FileDone(later, other, 0, (), False, 0, "not read")
            yield Unreadable(error)
            return
        with opened as capture:
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
