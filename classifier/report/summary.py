"""The printed summary of `sgclassify classify`: tables of the summary document.

Presentation only: the numbers are `classifier.engine.stats.SummaryBuilder.summary()`'s.
The summary is first laid out as a list of blocks (a line of text, or a table: title,
columns, rows), then written either with rich (boxed tables: on a terminal, when every table
is short) or as plain aligned text (a pipe, a file, or a long table). Plain text costs
microseconds per row; rich's layout costs about a millisecond per row, which made a
5,000-rule summary take longer than the classification itself.

`cap` (the command's `--top N`) keeps at most N rows of the long tables of the printed
summary: the N rules with the most packets (shown in policy order) and the N busiest
instance sides. The JSON and HTML outputs always keep every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

RICH_MAX_ROWS = 100  # a table longer than this is printed as plain text, even on a terminal


@dataclass
class Table:
    title: str
    columns: list[str]
    right: set[str]  # right-aligned columns
    rows: list[list[str]] = field(default_factory=list)


Block = Table | tuple[str, bool]  # a table, or (a line of text, bold)


def denied_port(row: dict[str, Any]) -> str:
    """A top-denied tuple's port cell: the destination port, or the ICMP type and code."""
    if row.get("dport") is not None:
        return str(row["dport"])
    if row.get("icmp_type") is not None:
        code = row.get("icmp_code")
        return f"type {row['icmp_type']} code {'?' if code is None else code}"
    return ""


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _duration(seconds: float) -> str:
    """At most two units: `6 h 1 min`, `11158 d 3 h`."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    start = next((i for i, (v, _) in enumerate(parts) if v), 3)
    return " ".join(f"{v:,} {u}" for v, u in parts[start : start + 2] if v) or "0 s"


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _largest(
    items: list[dict[str, Any]], cap: int | None, weight: Callable[[dict[str, Any]], int]
) -> list[dict[str, Any]]:
    """At most `cap` items with the largest `weight` (ties: the earlier), in their order."""
    if cap is None or len(items) <= cap:
        return items
    ranked = sorted(range(len(items)), key=lambda i: (-weight(items[i]), i))[:cap]
    return [items[i] for i in sorted(ranked)]


def layout(summary: dict[str, Any], cap: int | None = None) -> list[Block]:
    """The printed summary as blocks, in order (see the module docstring for `cap`)."""
    blocks: list[Block] = []
    packets, total_bytes = summary["packets"], summary["bytes"]
    span = summary["time"]["span_seconds"]
    blocks.append(
        (
            f"{_plural(packets, 'packet')}, {_plural(total_bytes, 'byte')} in "
            f"{_plural(len(summary['files']), 'capture')}, {span:,.3f} s of traffic"
            + (f" ({_duration(span)})" if span >= 120 else "")
            + f", {summary['mode']} mode",
            True,
        )
    )
    verdicts = Table("Verdicts", ["verdict", "packets", "%", "bytes"], {"packets", "%", "bytes"})
    for name, n in summary["verdicts"].items():
        verdicts.rows.append(
            [name, f"{n:,}", _percent(n, packets), f"{summary['verdict_bytes'][name]:,}"]
        )
    blocks.append(verdicts)
    reasons = Table("Reasons", ["reason", "packets"], {"packets"})
    reasons.rows = [[name, f"{n:,}"] for name, n in summary["reasons"].items()]
    blocks.append(reasons)

    all_sides = summary["sides"]
    if all_sides:
        sides = _largest(all_sides, cap, lambda side: side["allow"] + side["deny"])
        title = "By instance and direction (reported side)"
        if len(sides) < len(all_sides):
            title += f": the {len(sides):,} busiest of {len(all_sides):,} (--top)"
        table = Table(
            title, ["instance", "direction", "allow", "deny", "bytes"], {"allow", "deny", "bytes"}
        )
        table.rows = [
            [s["instance"], s["direction"], f"{s['allow']:,}", f"{s['deny']:,}", f"{s['bytes']:,}"]
            for s in sides
        ]
        blocks.append(table)

    all_rules = summary["rules"]
    rules = _largest(all_rules, cap, lambda rule: rule["packets"])
    title = "Hits per rule (policy order)"
    if len(rules) < len(all_rules):
        title = f"Hits per rule: the {len(rules):,} most hit of {len(all_rules):,} (policy order)"
    table = Table(
        title,
        # a connection is credited to one rule: the creating packet's reported rule (the
        # receiver's ingress rule, else the sender's egress rule), so the column adds up to
        # the connections created
        ["rule", "group", "dir", "prio", "action", "packets", "bytes", "conns created", ""],
        {"prio", "packets", "bytes", "conns created"},
    )
    for rule in rules:
        mark = "never hit" if rule["packets"] == 0 else ""
        if not rule["enabled"]:
            mark = "disabled"
        table.rows.append(
            [
                rule["id"],
                rule["group"],
                rule["direction"],
                str(rule["priority"]),
                rule["action"],
                f"{rule['packets']:,}",
                f"{rule['bytes']:,}",
                f"{rule['connections']:,}",
                mark,
            ]
        )
    blocks.append(table)
    never = summary["never_hit"]
    shown = never if cap is None or len(never) <= cap else never[:cap]
    listing = ", ".join(shown) + (
        f", ... ({len(never) - len(shown):,} more)" if shown != never else ""
    )
    blocks.append(
        (
            f"{len(never)} of {len(all_rules)} rules never hit" + (f": {listing}" if never else ""),
            False,
        )
    )

    if summary["top_denied"]:
        table = Table(
            f"Top denied (of {summary['denied_tuples']:,} distinct tuples)",
            ["source", "destination", "proto", "dport / icmp", "packets"],
            {"packets"},
        )
        for row in summary["top_denied"]:
            table.rows.append(
                [row["src"], row["dst"], row["protocol"], denied_port(row), f"{row['packets']:,}"]
            )
        blocks.append(table)

    connections = summary["connections"]
    if summary["mode"] == "stateful":
        by_protocol = ", ".join(
            f"{name} {count:,}" for name, count in connections["by_protocol"].items()
        )
        blocks.append(
            (
                f"connections: {connections['total']:,} created (each credited to one rule above)"
                + (f" ({by_protocol})" if by_protocol else "")
                + f", {connections['midstream']:,} TCP picked up mid-stream",
                False,
            )
        )
    if summary["malformed"]:
        text = ", ".join(f"{reason} {count:,}" for reason, count in summary["malformed"].items())
        blocks.append(("malformed: " + text, False))
    if "filter" in summary:
        blocks.append(
            (
                f"--filter {summary['filter']['expression']!r}: "
                f"{summary['filter']['filtered']:,} records filtered out (not part of this run)",
                False,
            )
        )
    for file in summary["files"]:
        if file["slow_path"]:
            blocks.append(
                (
                    f"{file['path']}: {file['slow_path']:,} records of link types without a "
                    "native decoder went through scapy's dissectors (slower)",
                    False,
                )
            )
        if file["damaged"]:
            blocks.append(
                (
                    f"{file['path']}: damaged, {file['packets']:,} packets read before the damage",
                    True,
                )
            )
    return blocks


def _plain(blocks: list[Block], out: TextIO) -> None:
    """Aligned plain text: a title line, a header, a rule of dashes, the rows."""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, Table):
            lines.append(block[0])
            continue
        widths = [len(name) for name in block.columns]
        for row in block.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        right = [name in block.right for name in block.columns]

        def line(cells: list[str], widths: list[int] = widths, right: list[bool] = right) -> str:
            return "  ".join(
                cell.rjust(w) if r else cell.ljust(w)
                for cell, w, r in zip(cells, widths, right, strict=True)
            ).rstrip()

        lines.append("")
        lines.append(block.title)
        lines.append(line(block.columns))
        lines.append(line(["-" * w for w in widths]))
        lines.extend(line(row) for row in block.rows)
    out.write("\n".join(lines) + "\n")


def _rich(blocks: list[Block], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    class PlainConsole(Console):
        """Ids and paths are user text: never read as markup. A closed pipe (`| head`) is
        the CLI's to handle, not a reason for rich to exit the process."""

        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    console = PlainConsole(file=out, highlight=False, emoji=False, markup=False)
    for block in blocks:
        if not isinstance(block, Table):
            console.print(block[0], style="bold" if block[1] else None)
            continue
        table = RichTable(title=block.title, title_justify="left")
        for name in block.columns:
            table.add_column(name, justify="right" if name in block.right else "left")
        for row in block.rows:
            table.add_row(*row)
        console.print(table)


def print_summary(
    summary: dict[str, Any], out: TextIO, cap: int | None = None, rich: bool | None = None
) -> None:
    """Print the summary: rich tables on a terminal when every table is short (at most
    RICH_MAX_ROWS rows), plain text otherwise; `rich` forces one or the other."""
    blocks = layout(summary, cap)
    if rich is None:
        rich = out.isatty() and all(
            len(block.rows) <= RICH_MAX_ROWS for block in blocks if isinstance(block, Table)
        )
    (_rich if rich else _plain)(blocks, out)
