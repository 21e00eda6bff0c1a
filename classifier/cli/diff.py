"""`sgclassify diff --old A --new B CAPTURE...`: which recorded packets a policy change changes.

Exit 0 when no packet changes, 1 when at least one does, 2 on bad input (either policy
invalid, a capture unreadable, bad arguments, an output that cannot be written) and on any
other failure, so CI can gate a policy change on recorded traffic. The work is
`classifier.report.diff`'s; this module checks the inputs, writes the outputs and prints the
report.
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from typing import Any, TextIO

from classifier.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    add_captures,
    add_strict,
    check_captures,
    file_inputs,
    load_policy,
    plural,
    print_warnings,
    progress_bar,
)
from classifier.cli.text import table

EXIT_CHANGED = 1
EXIT_ON_INTERNAL_ERROR = EXIT_BAD_INPUT  # exit 1 means "changes": a failure must not say so
STDOUT = "-"
SHOWN_GROUPS = 20  # groups in the printed table (the JSON has them all)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "diff",
        help="which packets of recorded traffic a policy change would change",
        description="Classify the captures (one continuous capture, decoded once) under the "
        "OLD and the NEW policy, each with its own connection state, and report every packet "
        "whose verdict changes: totals, transitions (allow -> deny, ...) and the pairs of "
        "deciding rules. Exit 0: nothing changes; 1: something does; 2: bad input or failure.",
        epilog="example: would this change break recorded traffic?\n"
        "  sgclassify diff --old prod.yaml --new candidate.yaml traffic/*.pcap "
        "--json diff.json --packets changed.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--old", required=True, metavar="OLD", help="the policy in force")
    parser.add_argument("--new", required=True, metavar="NEW", help="the changed policy")
    add_captures(parser)
    parser.add_argument(
        "--stateless", action="store_true", help="judge every packet by the rules alone"
    )
    parser.add_argument(
        "--packets",
        metavar="OUT",
        help="write the changed packets, one row each: CSV, or JSON Lines (.jsonl) or "
        "Parquet (.parquet) by the extension ('-': standard output)",
    )
    parser.add_argument(
        "--json", metavar="OUT", help="write the diff as one JSON object ('-': standard output)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_strict(parser)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.engine import Engine
    from classifier.engine.columns import Labels
    from classifier.report.diff import DIFF_PACKET_COLUMNS, PolicyDiff, changed_rows
    from classifier.report.outputs import check_outputs, open_output
    from classifier.report.tables import check_table_output, open_table

    outputs = [args.packets, args.json]
    check_outputs([args.old, args.new, *file_inputs(args.pcaps)], outputs)
    check_table_output(args.packets, "--packets")
    old_policy = load_policy(args.old, err, args.strict)
    new_policy = load_policy(args.new, err, args.strict)
    repeated = check_captures(args.pcaps)
    print_warnings(repeated.values(), err)
    old, new = Engine(old_policy), Engine(new_policy)
    old_labels, new_labels = Labels.of_engine(old), Labels.of_engine(new)
    diff = PolicyDiff(old, new, stateful=not args.stateless)
    packets_table = (
        open_table(args.packets, DIFF_PACKET_COLUMNS, out=out, option="--packets")
        if args.packets
        else nullcontext(None)
    )
    with packets_table as packets, progress_bar(args.pcaps, args.quiet, err) as progress:
        try:
            for step in diff.run(args.pcaps, progress):
                if packets is not None and len(step.changed):
                    packets.write(
                        changed_rows(step.old, step.new, step.changed, old_labels, new_labels)
                    )
        finally:
            for file in diff.files:
                print_warnings(file.warnings, err)
    document = diff.builder.document(args.old, args.new, not args.stateless)
    if args.json:
        with open_output(args.json, out) as stream:
            assert stream is not None
            json.dump(document, stream, indent=2)
            stream.write("\n")
    if STDOUT not in outputs:
        for line in report_lines(document):
            print(line, file=out)
    if args.strict and any(file.warnings for file in diff.files):
        print("error: capture warnings (--strict: warnings are errors)", file=err)
        return EXIT_BAD_INPUT
    return EXIT_CHANGED if document["changed"]["packets"] else EXIT_OK


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "-"


def _row_text(row: dict[str, Any]) -> str:
    if row["rule"] is not None:
        return f"{row['verdict']} by {row['group']}/{row['rule']}"
    return f"{row['verdict']} ({row['reason']})" if row["reason"] else row["verdict"]


def _endpoint(address: str | None, port: int | None) -> str:
    if address is None:
        return "-"
    if port is None:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def report_lines(document: dict[str, Any]) -> list[str]:
    """The printed report: the totals in words, then the transitions and the rule pairs."""
    changed = document["changed"]
    packets, total = changed["packets"], document["packets"]
    lines = [
        f"{document['old']} -> {document['new']} ({document['mode']}): "
        f"{plural(total, 'packet')}, {document['bytes']:,} bytes",
    ]
    if not packets:
        lines.append("no packet changes verdict")
        return lines
    lines.append(
        f"{plural(packets, 'packet')} change verdict ({_percent(packets, total)}), "
        f"{changed['bytes']:,} bytes, {plural(changed['connections'], 'connection')}"
    )
    lines.append("")
    lines += table(
        ("old", "new", "packets", "bytes", "connections"),
        [
            (t["old"], t["new"], f"{t['packets']:,}", f"{t['bytes']:,}", f"{t['connections']:,}")
            for t in document["transitions"]
        ],
    )
    groups = document["groups"]
    lines.append("")
    lines.append(f"by deciding rule ({plural(len(groups), 'pair')}, in order of first change):")
    rows = []
    for group in groups[:SHOWN_GROUPS]:
        e = group["example"]
        where = f"{_endpoint(e['src'], e['sport'])} -> {_endpoint(e['dst'], e['dport'])}"
        rows.append(
            (
                _row_text(group["old"]),
                _row_text(group["new"]),
                f"{group['packets']:,}",
                f"{group['connections']:,}",
                f"{e['file']}#{e['index']} {where}",
            )
        )
    lines += table(("old", "new", "packets", "connections", "first packet"), rows)
    if len(groups) > SHOWN_GROUPS:
        lines.append(f"... and {len(groups) - SHOWN_GROUPS} more pairs (all in --json)")
    return lines
