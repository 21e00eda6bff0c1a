"""Table outputs: the one writer behind every per-row output (`--packets`, `--flows`,
`diff --packets`, `packets --csv`).

A table is a schema, a sequence of `(name, kind)` with kind `int`, `bool` or `text`
(`classifier.engine.columns.INT`, `BOOL`, `TEXT`), and batches of columns, a mapping from
each name to one batch's values:

- `int`: a numpy integer array; a negative value is an empty field (no column of the
  project's tables can be negative: indices, timestamps, lengths, ports, counts);
- `bool`: a numpy bool array (never empty);
- `text`: an object array of `str`, or dictionary-encoded as a tuple `(codes, labels)` (row i
  is `labels[codes[i]]`), which is how ids, names and addresses arrive: each label is quoted,
  escaped or converted once per batch, not once per row. The text `""` is an empty field.

    with open_table("out.parquet", PACKET_COLUMNS, out=sys.stdout) as table:
        for result in run.run(paths):
            table.write(result_table(result, labels))

The format follows the path's extension, case-insensitively (`table_format`): `.jsonl` is
JSON Lines, `.parquet` Apache Parquet (pyarrow, the `parquet` extra), anything else CSV; the
three hold the same rows in the same order (the contract: docs/outputs.md):

- CSV: a header row, RFC 4180 quoting where a cell needs it, `\\n` line ends, empty fields
  empty, booleans `true`/`false`; text as given (non-UTF-8 bytes of file names as they were);
- JSON Lines: one object per row, keys in column order, empty fields `null`, UTF-8;
- Parquet: `int64`, `bool` and `string` columns, empty fields null; batches are gathered into
  row groups of about `ROW_GROUP_ROWS` rows and written as they fill, so memory holds one row
  group, never the table.

Outputs open through `classifier.report.outputs.open_output`: `-` is standard output, and a
file is written beside its final name and renamed into place only when the table is complete
(an interrupted run leaves no partial file). A write error is a `UsageError` naming the path.
Text that is not valid UTF-8 (file names given as raw bytes) is written to JSON Lines and
Parquet with U+FFFD in place of each undecodable byte, since both formats are UTF-8 by
definition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from io import TextIOBase as TextIOType
from typing import IO, Any

import numpy as np

from classifier.engine.columns import BOOL, INT, TEXT, Labelled
from classifier.errors import UsageError
from classifier.report.outputs import open_output

__all__ = [
    "CSV",
    "JSONL",
    "PARQUET",
    "ROW_GROUP_ROWS",
    "TableWriter",
    "check_table_output",
    "open_table",
    "table_format",
]

CSV, JSONL, PARQUET = "csv", "jsonl", "parquet"
ROW_GROUP_ROWS = 1 << 17  # Parquet rows gathered before a row group is written
PARQUET_EXTRA = "pip install 'sg-classifier[parquet]'"

Column = np.ndarray | Labelled
Schema = Sequence[tuple[str, str]]

# decimal text of -1..65535 ("" for -1): a table lookup is several times faster than str()
_DECIMAL16 = np.array([""] + [str(k) for k in range(65536)], dtype=object)


def table_format(path: str) -> str:
    """`jsonl`, `parquet` or `csv`, by the path's extension (case-insensitive)."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".jsonl":
        return JSONL
    if extension == ".parquet":
        return PARQUET
    return CSV


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow


def check_table_output(path: str | None, option: str = "") -> None:
    """Refuse, before anything is read, a table output that cannot be written: a `.parquet`
    path without pyarrow installed."""
    if path is None or table_format(path) != PARQUET:
        return
    if _pyarrow() is None:
        where = f"{option} {path}" if option else path
        raise UsageError(f"{where}: writing Parquet needs pyarrow: {PARQUET_EXTRA}")


def _utf8(text: str) -> str:
    """Text as valid Unicode: the bytes of a non-UTF-8 file name become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _csv_cell(text: str) -> str:
    """One CSV cell, quoted (RFC 4180) only where the text needs it."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _integers(values: np.ndarray) -> list[str]:
    """Decimal text of an integer column, "" where negative."""
    if len(values) == 0:
        return []
    low, high = int(values.min()), int(values.max())
    if low >= -1 and high < 65536:
        text: list[str] = _DECIMAL16[values.astype(np.int64) + 1].tolist()
        return text
    if low >= 0:
        return list(map(str, values.tolist()))
    return [str(v) if v >= 0 else "" for v in values.tolist()]


def _text_cells(column: Column, convert: Any) -> list[str]:
    """A text column's cells, each label passed through `convert` once."""
    if isinstance(column, tuple):
        codes, labels = column
        converted = np.array([convert(str(label)) for label in labels], dtype=object)
        cells: list[str] = converted[np.asarray(codes, dtype=np.int64)].tolist()
        return cells
    return [convert(str(value)) for value in column.tolist()]


def _length(column: Column) -> int:
    return len(column[0]) if isinstance(column, tuple) else len(column)


class TableWriter:
    """Writes one table, batch after batch, to an open stream (`open_table` opens one)."""

    def __init__(self, stream: IO[Any], schema: Schema, fmt: str, name: str = "output"):
        for column, kind in schema:
            if kind not in (INT, BOOL, TEXT):
                raise ValueError(f"column {column!r}: unknown kind {kind!r}")
        self.stream = stream
        self.schema = tuple(schema)
        self.format = fmt
        self.name = name
        self.rows = 0
        self._parquet: Any = None
        self._pending: list[Any] = []
        self._pending_rows = 0
        if fmt == CSV:
            self._text(",".join(_csv_cell(column) for column, _ in self.schema) + "\n")
        elif fmt == JSONL:
            keys = [json.dumps(column, ensure_ascii=False) + ":" for column, _ in self.schema]
            self._template = "{" + ",".join(key.replace("%", "%%") + "%s" for key in keys) + "}"
        elif fmt == PARQUET:
            self._start_parquet()
        else:
            raise ValueError(f"unknown table format {fmt!r}")

    # --- streams ---------------------------------------------------------------------------
    def _text(self, text: str) -> None:
        if isinstance(self.stream, TextIOType):
            self.stream.write(text)
        else:
            self.stream.write(text.encode("utf-8", "surrogateescape"))

    def _binary(self) -> IO[bytes]:
        if not isinstance(self.stream, TextIOType):
            return self.stream
        buffer = getattr(self.stream, "buffer", None)
        if buffer is None:
            raise UsageError(f"{self.name}: Parquet needs a binary stream (a file, or '-')")
        self.stream.flush()
        return buffer

    # --- batches ---------------------------------------------------------------------------
    def write(self, batch: Mapping[str, Column]) -> None:
        """Append one batch's rows: every column of the schema, all of one length."""
        lengths = {_length(batch[column]) for column, _ in self.schema}
        if len(lengths) != 1:
            raise ValueError(f"columns of unequal lengths {sorted(lengths)}")
        n = lengths.pop()
        if n == 0:
            return
        self.rows += n
        if self.format == CSV:
            cells = [self._csv_column(batch[column], kind) for column, kind in self.schema]
            self._text("\n".join(map(",".join, zip(*cells, strict=True))) + "\n")
        elif self.format == JSONL:
            cells = [self._json_column(batch[column], kind) for column, kind in self.schema]
            template = self._template
            self._text("\n".join(template % row for row in zip(*cells, strict=True)) + "\n")
        else:
            self._parquet_batch(batch, n)

    @staticmethod
    def _csv_column(column: Column, kind: str) -> list[str]:
        if kind == TEXT:
            return _text_cells(column, _csv_cell)
        assert isinstance(column, np.ndarray)
        if kind == BOOL:
            return np.where(column.astype(bool), "true", "false").tolist()  # type: ignore[no-any-return]
        return _integers(column)

    @staticmethod
    def _json_column(column: Column, kind: str) -> list[str]:
        if kind == TEXT:
            return _text_cells(
                column, lambda text: json.dumps(_utf8(text), ensure_ascii=False) if text else "null"
            )
        assert isinstance(column, np.ndarray)
        if kind == BOOL:
            return np.where(column.astype(bool), "true", "false").tolist()  # type: ignore[no-any-return]
        return [text or "null" for text in _integers(column)]

    # --- Parquet -----------------------------------------------------------------------------
    def _start_parquet(self) -> None:
        pa = _pyarrow()
        if pa is None:
            raise UsageError(f"{self.name}: writing Parquet needs pyarrow: {PARQUET_EXTRA}")
        types = {INT: pa.int64(), BOOL: pa.bool_(), TEXT: pa.string()}
        self._arrow_schema = pa.schema([(column, types[kind]) for column, kind in self.schema])
        self._parquet = pa.parquet.ParquetWriter(self._binary(), self._arrow_schema)

    def _parquet_batch(self, batch: Mapping[str, Column], n: int) -> None:
        pa = _pyarrow()
        arrays = []
        for column, kind in self.schema:
            values = batch[column]
            if kind == TEXT:
                if isinstance(values, tuple):
                    codes, labels = values
                else:
                    labels, inverse = np.unique(values.astype(object), return_inverse=True)
                    codes = inverse.ravel()
                dictionary = pa.array(
                    [_utf8(str(label)) if label != "" else None for label in labels], pa.string()
                )
                arrays.append(dictionary.take(pa.array(np.asarray(codes, dtype=np.int64))))
            elif kind == BOOL:
                assert isinstance(values, np.ndarray)
                arrays.append(pa.array(values.astype(bool), pa.bool_()))
            else:
                assert isinstance(values, np.ndarray)
                ints = values.astype(np.int64)
                arrays.append(pa.array(ints, pa.int64(), mask=ints < 0))
        self._pending.append(pa.RecordBatch.from_arrays(arrays, schema=self._arrow_schema))
        self._pending_rows += n
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush_parquet()

    def _flush_parquet(self) -> None:
        if not self._pending:
            return
        pa = _pyarrow()
        table = pa.Table.from_batches(self._pending, schema=self._arrow_schema)
        self._pending, self._pending_rows = [], 0
        self._parquet.write_table(table, row_group_size=max(len(table), 1))

    def close(self) -> None:
        """Finish the table (Parquet: the last row group and the footer)."""
        if self._parquet is not None:
            self._flush_parquet()
            self._parquet.close()
            self._parquet = None


@contextmanager
def open_table(
    path: str,
    schema: Schema,
    out: IO[str] | None = None,
    fmt: str | None = None,
    option: str = "",
) -> Iterator[TableWriter]:
    """A `TableWriter` on `path` (`-`: standard output, or `out` when given) in the format of
    its extension (or `fmt`); the file appears under its name only when the block completes."""
    fmt = fmt or table_format(path)
    if fmt == PARQUET:
        check_table_output(path, option)
    with open_output(path, out=out, binary=fmt == PARQUET) as stream:
        assert stream is not None
        writer = TableWriter(stream, schema, fmt, path)
        try:
            yield writer
        finally:
            writer.close()
