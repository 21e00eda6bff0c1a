"""`sgclassify classify`: run the pipeline, show progress, write the CSV/JSON/HTML, print the summary.

Presentation only: the numbers come from `pipeline.Classification` and `stats.SummaryBuilder`.
A capture that cannot be read stops the run with exit code 2, but the summary of what was
classified before it is still printed and written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import numpy as np

from classifier.engine import Engine
from classifier.errors import ClassifierError, UsageError
from classifier.loaders import load_policy
from classifier.pipeline import BatchResult, Classification
from classifier.stats import DIRECTION_NAMES, REASON_NAMES, VERDICT_NAMES

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
        self.verdicts = np.array([VERDICT_NAMES.get(code, "") for code in range(256)], dtype=object)
        self.reasons = np.array([REASON_NAMES.get(code, "") for code in range(256)], dtype=object)
        self.directions = np.array([DIRECTION_NAMES.get(code, "") for code in range(256)], dtype=object)
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
            self.verdicts[result.verdict].tolist(),
            self.reasons[result.reason].tolist(),
            self.instances[result.instance + 1].tolist(),
            self.directions[result.direction].tolist(),
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
                raise UsageError(f"{output}: this output file is also {other!r}: choose another name")
        seen.append(output)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return os.path.abspath(a) == os.path.abspath(b)


def run_classify(args: Any, out: TextIO, err: TextIO) -> int:
    for path in args.pcaps:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such capture file")
        if not os.path.isfile(path):
            raise UsageError(f"{path}: not a regular file (a directory, pipe or device): give a capture file")
    check_outputs([args.policy, *args.pcaps], [args.packets, args.json, args.report])
    policy = load_policy(args.policy)
    for warning in policy.warnings:
        print(f"warning: {warning}", file=err)
    engine = Engine(policy)
    run = Classification(engine, stateful=not args.stateless)
    failure: ClassifierError | None = None
    with open_output(args.packets) as packets_stream, _progress(args, err) as progress:
        writer = PacketCsvWriter(packets_stream, engine) if packets_stream is not None else None
        try:
            for result in run.run(args.pcaps, progress):
                if writer is not None:
                    writer.write(result)
        except ClassifierError as error:
            failure = error
    summary = run.summary(args.top)
    for file in summary["files"]:
        for warning in file["warnings"]:
            print(f"warning: {warning}", file=err)
    if args.json:
        with open_output(args.json) as json_stream:
            assert json_stream is not None
            json.dump(summary, json_stream, indent=2)
            json_stream.write("\n")
    if args.report:
        from classifier.report_html import write_report

        with open_output(args.report) as report_stream:
            assert report_stream is not None
            write_report(summary, report_stream, args.policy)
    print_summary(summary, out)
    if failure is not None:
        raise failure
    return 0


@contextmanager
def _progress(args: Any, err: TextIO) -> Iterator[Any]:
    """A progress bar by bytes read, on a terminal only, and never with -q."""
    if args.quiet or not err.isatty():
        yield None
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    total = sum(os.path.getsize(path) for path in args.pcaps)
    offsets: dict[str, int] = {}
    running = 0
    for path in args.pcaps:
        offsets[path] = running
        running += os.path.getsize(path)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(file=err),
        transient=True,
    ) as bar:
        task = bar.add_task("classifying", total=total)

        def update(path: str, position: int, size: int) -> None:
            bar.update(task, completed=offsets.get(path, 0) + position, description=escape(os.path.basename(path)))

        yield update


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def print_summary(summary: dict[str, Any], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    class PlainConsole(Console):
        """Ids and paths are user text: never read as markup. A closed pipe (`| head`) is
        the CLI's to handle, not a reason for rich to exit the process."""

        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    width = None if out.isatty() else 120
    console = PlainConsole(file=out, width=width, highlight=False, emoji=False, markup=False)
    packets, total_bytes = summary["packets"], summary["bytes"]
    span = summary["time"]["span_seconds"]
    console.print(
        f"{packets:,} packets, {total_bytes:,} bytes in {len(summary['files'])} "
        f"capture(s), {span:,.3f} s of traffic, {summary['mode']} mode",
        style="bold",
    )

    table = Table(title="Verdicts", title_justify="left")
    for name in ("verdict", "packets", "%", "bytes"):
        table.add_column(name, justify="left" if name == "verdict" else "right")
    for name, count in summary["verdicts"].items():
        table.add_row(name, f"{count:,}", _percent(count, packets), f"{summary['verdict_bytes'][name]:,}")
    console.print(table)

    table = Table(title="Reasons", title_justify="left")
    table.add_column("reason")
    table.add_column("packets", justify="right")
    for name, count in summary["reasons"].items():
        table.add_row(name, f"{count:,}")
    console.print(table)

    if summary["sides"]:
        table = Table(title="By instance and direction (reported side)", title_justify="left")
        for name in ("instance", "direction", "allow", "deny", "bytes"):
            table.add_column(name, justify="left" if name in ("instance", "direction") else "right")
        for side in summary["sides"]:
            table.add_row(
                side["instance"], side["direction"], f"{side['allow']:,}", f"{side['deny']:,}", f"{side['bytes']:,}"
            )
        console.print(table)

    table = Table(title="Hits per rule (policy order)", title_justify="left")
    for name in ("rule", "group", "dir", "prio", "action", "packets", "bytes", "conns", ""):
        table.add_column(name, justify="right" if name in ("prio", "packets", "bytes", "conns") else "left")
    for rule in summary["rules"]:
        mark = "never hit" if rule["packets"] == 0 else ""
        if not rule["enabled"]:
            mark = "disabled"
        table.add_row(
            rule["id"],
            rule["group"],
            rule["direction"],
            str(rule["priority"]),
            rule["action"],
            f"{rule['packets']:,}",
            f"{rule['bytes']:,}",
            f"{rule['connections']:,}",
            mark,
        )
    console.print(table)
    never = summary["never_hit"]
    console.print(f"{len(never)} of {len(summary['rules'])} rules never hit" + (f": {', '.join(never)}" if never else ""))

    if summary["top_denied"]:
        table = Table(
            title=f"Top denied (of {summary['denied_tuples']:,} distinct tuples)", title_justify="left"
        )
        for name in ("source", "destination", "proto", "dport", "packets"):
            table.add_column(name, justify="right" if name == "packets" else "left")
        for row in summary["top_denied"]:
            dport = "" if row["dport"] is None else str(row["dport"])
            table.add_row(row["src"], row["dst"], row["protocol"], dport, f"{row['packets']:,}")
        console.print(table)

    connections = summary["connections"]
    if summary["mode"] == "stateful":
        by_protocol = ", ".join(f"{name} {count:,}" for name, count in connections["by_protocol"].items())
        console.print(
            f"connections: {connections['total']:,} created"
            + (f" ({by_protocol})" if by_protocol else "")
            + f", {connections['midstream']:,} TCP picked up mid-stream"
        )
    if summary["malformed"]:
        console.print(
            "malformed: " + ", ".join(f"{reason} {count:,}" for reason, count in summary["malformed"].items())
        )
    for file in summary["files"]:
        if file["slow_path"]:
            console.print(
                f"{file['path']}: {file['slow_path']:,} records of link types without a native "
                "decoder went through scapy's dissectors (slower)"
            )
        if file["damaged"]:
            console.print(f"{file['path']}: damaged, {file['packets']:,} packets read before the damage", style="bold")
