"""`sgclassify lint POLICY`: what is wrong with a policy before any traffic.

Exit 0, or 1 with `--fail-on LEVEL` when a finding of that severity or higher exists, 2 on bad
input. The findings are `classifier.analysis.lint`'s; this module prints and writes them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from classifier.cli.common import EXIT_OK, add_strict, load_policy
from classifier.cli.text import short, table, write_json

EXIT_FINDINGS = 1


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "lint",
        help="shadowed, redundant, conflicting, exposed and unused rules",
        description="Report what is wrong with POLICY before any traffic (exact, per "
        "instance group sequence): shadowed, redundant, conflicting, empty, exposed and "
        "disabled rules, unused groups and address groups.",
    )
    parser.add_argument("policy", metavar="POLICY", help="policy file (YAML or JSON)")
    parser.add_argument(
        "--json",
        metavar="OUT",
        help="also write the findings as JSON to OUT ('-': on stdout, instead of the table)",
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        metavar="LEVEL",
        help="exit 1 when a finding of LEVEL or higher exists (error > warning > info)",
    )
    add_strict(parser)


def _lint_details(finding: Any) -> str:
    kind = finding.kind
    if kind == "shadowed":
        covering = list(dict.fromkeys(c for s in finding.sequences for c in s.covering))
        where = "everywhere" if finding.everywhere else f"on {len(finding.sequences)} sequence(s)"
        opposite = any(s.opposite_action for s in finding.sequences)
        return (
            f"{where}; covered by {short(covering) or '-'}"
            + (" (opposite action)" if opposite else "")
            + f"; instances {short(finding.instances)}"
        )
    if kind == "redundant":
        return f"falls back to {short(finding.fallback)}; instances {short(finding.instances)}"
    if kind == "conflict":
        return f"allow {finding.allow} and deny {finding.deny} overlap at one priority (deny wins)"
    if kind == "matches-nothing":
        return f"remote {finding.remote_kind} {finding.remote} holds no IPv{finding.family} address"
    if kind == "exposed":
        if finding.all_ports:
            opened = "all ports" + (f", among them {short(finding.ports)}" if finding.ports else "")
        else:
            opened = short(finding.ports)
        return f"{opened} open to the whole address space; instances {short(finding.instances)}"
    if kind == "disabled":
        return "enabled: false"
    if kind == "unused-group":
        return "no instance has the group"
    if kind == "unused-address-group":
        return f"address group {finding.address_group}: no rule names it"
    return ""


def lint_table(report: Any) -> list[str]:
    rows = [
        (f.severity, f.kind, f.group or "-", f.rule or "-", _lint_details(f))
        for f in report.findings
    ]
    counts = report.counts()
    lines = table(("severity", "kind", "group", "rule", "details"), rows) if rows else []
    lines.append(
        f"{len(report.findings)} findings ({counts['error']} error, {counts['warning']} warning, "
        f"{counts['info']} info)"
    )
    return lines


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.analysis.lint import lint

    policy = load_policy(args.policy, err, args.strict)
    report = lint(policy)
    document = report.to_json(args.policy)
    if args.json == "-":
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        if args.json:
            write_json(args.json, [args.policy], document)
        for line in lint_table(report):
            print(line, file=out)
    if args.fail_on is not None and report.fails(args.fail_on):
        return EXIT_FINDINGS
    return EXIT_OK
