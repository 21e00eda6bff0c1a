"""The printed summary of `sgclassify classify`: tables of the summary document.

Presentation only: the numbers are `classifier.engine.stats.SummaryBuilder.summary()`'s.
"""

from __future__ import annotations

from typing import Any, TextIO


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
        table.add_row(
            name, f"{count:,}", _percent(count, packets), f"{summary['verdict_bytes'][name]:,}"
        )
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
                side["instance"],
                side["direction"],
                f"{side['allow']:,}",
                f"{side['deny']:,}",
                f"{side['bytes']:,}",
            )
        console.print(table)

    table = Table(title="Hits per rule (policy order)", title_justify="left")
    for name in ("rule", "group", "dir", "prio", "action", "packets", "bytes", "conns", ""):
        table.add_column(
            name, justify="right" if name in ("prio", "packets", "bytes", "conns") else "left"
        )
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
    console.print(
        f"{len(never)} of {len(summary['rules'])} rules never hit"
        + (f": {', '.join(never)}" if never else "")
    )

    if summary["top_denied"]:
        table = Table(
            title=f"Top denied (of {summary['denied_tuples']:,} distinct tuples)",
            title_justify="left",
        )
        for name in ("source", "destination", "proto", "dport", "packets"):
            table.add_column(name, justify="right" if name == "packets" else "left")
        for row in summary["top_denied"]:
            dport = "" if row["dport"] is None else str(row["dport"])
            table.add_row(row["src"], row["dst"], row["protocol"], dport, f"{row['packets']:,}")
        console.print(table)

    connections = summary["connections"]
    if summary["mode"] == "stateful":
        by_protocol = ", ".join(
            f"{name} {count:,}" for name, count in connections["by_protocol"].items()
        )
        console.print(
            f"connections: {connections['total']:,} created"
            + (f" ({by_protocol})" if by_protocol else "")
            + f", {connections['midstream']:,} TCP picked up mid-stream"
        )
    if summary["malformed"]:
        console.print(
            "malformed: "
            + ", ".join(f"{reason} {count:,}" for reason, count in summary["malformed"].items())
        )
    if "filter" in summary:
        console.print(
            f"--filter {summary['filter']['expression']!r}: "
            f"{summary['filter']['filtered']:,} records filtered out (not part of this run)"
        )
    for file in summary["files"]:
        if file["slow_path"]:
            console.print(
                f"{file['path']}: {file['slow_path']:,} records of link types without a native "
                "decoder went through scapy's dissectors (slower)"
            )
        if file["damaged"]:
            console.print(
                f"{file['path']}: damaged, {file['packets']:,} packets read before the damage",
                style="bold",
            )
