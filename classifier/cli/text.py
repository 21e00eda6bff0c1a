"""Plain-text tables and JSON outputs shared by the analysis commands (lint, exposure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

SHOWN = 4  # list items shown in a table cell before "+N more"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def short(items: Sequence[str], shown: int = SHOWN) -> str:
    """A list in one cell: the first `shown` items, then "+N more" (the JSON keeps them all)."""
    if len(items) <= shown:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f", +{len(items) - shown} more"


def write_json(path: str, inputs: list[str], document: dict[str, Any]) -> None:
    """`document` as indented JSON to `path`, refused when it is one of the inputs."""
    from classifier.report.outputs import check_outputs, open_output

    check_outputs(inputs, [path])
    with open_output(path) as stream:
        assert stream is not None
        json.dump(document, stream, indent=2)
        stream.write("\n")
