"""Output files of a run: the per-packet CSV, and opening outputs safely.

`PacketCsvWriter` writes the per-packet rows of semantics section 6 a batch at a time from
lookup tables (no Python call per packet); `open_output` opens an output whose errors name
it; `check_outputs` refuses an output that is an input or another output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import numpy as np

from classifier.codes import DIRECTION_NAMES, REASON_NAMES, VERDICT_NAMES, names
from classifier.engine import BatchResult, Engine
from classifier.errors import UsageError

CSV_HEADER = "file,index,verdict,reason,instance,direction,group,rule\n"


def _csv_cell(text: str) -> str:
    """One CSV cell, quoted (RFC 4180) only where the text needs it: ids and paths are user
    text and may hold commas, quotes, or line breaks."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class PacketCsvWriter:
    """The per-packet CSV of spec section 6, written a batch at a time from lookup tables."""

    def __init__(self, stream: TextIO, engine: Engine):
        self.stream = stream
        self.instances = np.array([""] + [_csv_cell(i) for i in engine.instance_ids], dtype=object)
        self.groups = np.array([""] + [_csv_cell(r.group_id) for r in engine.rules], dtype=object)
        self.rules = np.array([""] + [_csv_cell(r.id) for r in engine.rules], dtype=object)
        stream.write(CSV_HEADER)

    def write(self, result: BatchResult) -> None:
        n = len(result.batch)
        if n == 0:
            return
        file_cell = _csv_cell(result.file)
        columns = (
            [file_cell] * n,
            result.batch.index.astype(str).tolist(),
            names(VERDICT_NAMES, result.verdict).tolist(),
            names(REASON_NAMES, result.reason).tolist(),
            self.instances[result.instance + 1].tolist(),
            names(DIRECTION_NAMES, result.direction).tolist(),
            self.groups[result.rule + 1].tolist(),
            self.rules[result.rule + 1].tolist(),
        )
        self.stream.write("\n".join(map(",".join, zip(*columns, strict=True))))
        self.stream.write("\n")


@contextmanager
def open_output(path: str | None) -> Iterator[TextIO | None]:
    """An output file; errors name it. Non-UTF-8 file names in the data pass through as the
    bytes they were (surrogateescape), as the shell gave them."""
    if path is None:
        yield None
        return
    try:
        stream = open(path, "w", newline="", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror}") from None
    try:
        with stream:
            yield stream
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror}") from None


def check_outputs(inputs: list[str], outputs: list[str | None]) -> None:
    """Refuse an output that is one of the inputs or another output: it would be truncated
    before it is read, or overwrite the other."""
    seen: list[str] = []
    for output in outputs:
        if output is None:
            continue
        for other in inputs + seen:
            if _same_file(output, other):
                raise UsageError(
                    f"{output}: this output file is also {other!r}: choose another name"
                )
        seen.append(output)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return os.path.abspath(a) == os.path.abspath(b)
