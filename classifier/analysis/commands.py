"""The `lint` and `exposure` commands and `check --why-not`: arguments, running, printing.

Each command is `add_X_arguments(parser)` and `run_X(args, out, err) -> exit code`, so the
CLI only registers them. Errors are `ClassifierError`s (the CLI prints them as one line each
and exits 2); nothing here exits or prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, TextIO

from classifier.errors import UsageError

EXIT_OK = 0
EXIT_FINDINGS = 1
SHOWN = 4  # list items shown in a table cell before "+N more"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def _short(items: Sequence[str], shown: int = SHOWN) -> str:
    if len(items) <= shown:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f", +{len(items) - shown} more"


def _write_json(path: str, inputs: list[str], document: dict[str, Any]) -> None:
    from classifier.report import check_outputs, open_output

    check_outputs(inputs, [path])
    with open_output(path) as stream:
        assert stream is not None
        json.dump(document, stream, indent=2)
        stream.write("\n")


def _load(path: str, err: TextIO) -> Any:
    from classifier.loaders import load_policy

    policy = load_policy(path)
    for warning in policy.warnings:
        print(f"warning: {warning}", file=err)
    return policy


# --- lint ------------------------------------------------------------------------------------


def add_lint_arguments(parser: argparse.ArgumentParser) -> None:
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


def _lint_details(finding: Any) -> str:
    kind = finding.kind
    if kind == "shadowed":
        covering = list(dict.fromkeys(c for s in finding.sequences for c in s.covering))
        where = "everywhere" if finding.everywhere else f"on {len(finding.sequences)} sequence(s)"
        opposite = any(s.opposite_action for s in finding.sequences)
        return (
            f"{where}; covered by {_short(covering) or '-'}"
            + (" (opposite action)" if opposite else "")
            + f"; instances {_short(finding.instances)}"
        )
    if kind == "redundant":
        return f"falls back to {_short(finding.fallback)}; instances {_short(finding.instances)}"
    if kind == "conflict":
        return f"allow {finding.allow} and deny {finding.deny} overlap at one priority (deny wins)"
    if kind == "matches-nothing":
        return f"remote {finding.remote_kind} {finding.remote} holds no IPv{finding.family} address"
    if kind == "exposed":
        if finding.all_ports:
            opened = "all ports" + (
                f", among them {_short(finding.ports)}" if finding.ports else ""
            )
        else:
            opened = _short(finding.ports)
        return f"{opened} open to the whole address space; instances {_short(finding.instances)}"
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
    lines = _table(("severity", "kind", "group", "rule", "details"), rows) if rows else []
    lines.append(
        f"{len(report.findings)} findings ({counts['error']} error, {counts['warning']} warning, "
        f"{counts['info']} info)"
    )
    return lines


def run_lint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.analysis.lint import lint

    policy = _load(args.policy, err)
    report = lint(policy)
    document = report.to_json(args.policy)
    if args.json == "-":
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        if args.json:
            _write_json(args.json, [args.policy], document)
        for line in lint_table(report):
            print(line, file=out)
    if args.fail_on is not None and report.fails(args.fail_on):
        return EXIT_FINDINGS
    return EXIT_OK


# --- check --why-not -------------------------------------------------------------------------


def why_not_sides(policy: Any, packet: Any) -> list[Any]:
    """The evaluated sides of `packet`, sender's egress first (as `reference.evaluate`)."""
    from classifier.analysis.keyspace import KeySpace
    from classifier.analysis.whynot import explain

    return list(explain(KeySpace(policy), packet))


# --- exposure --------------------------------------------------------------------------------


def add_exposure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, metavar="POLICY", help="policy file")
    parser.add_argument(
        "--instance",
        metavar="ID",
        help="the instance whose sockets file is given (sockets mode); without it the "
        "arguments are captures (capture mode)",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="SOCKETS_FILE|CAPTURE",
        help="with --instance: one saved netstat/ss listing ('-': standard input); "
        "else capture files (pcap, pcapng), read as one continuous capture",
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        help="also write the JSON document to OUT ('-': on stdout, instead of the table)",
    )


def _read_sockets_file(path: str, stdin: BinaryIO | None) -> bytes:
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        try:
            return stream.read()
        except OSError as error:
            raise UsageError(f"-: cannot read standard input: {error.strerror or error}") from None
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such sockets file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: a directory, not a sockets file")
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None


def _endpoint(address: Any, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _rules_cell(allow: Sequence[str], deny: Sequence[str]) -> str:
    parts = []
    if allow:
        parts.append(f"allow {_short(allow)}")
    if deny:
        parts.append(f"deny {_short(deny)}")
    return "; ".join(parts) or "-"


def _idle_lines(idle: Sequence[Any], title: str) -> list[str]:
    if not idle:
        return [f"{title}: none"]
    rows = [(i.rule, i.group, i.protocol, f"IPv{i.family}", _short(i.ports, 8)) for i in idle]
    return [
        f"{title}:",
        *("  " + line for line in _table(("rule", "group", "protocol", "family", "ports"), rows)),
    ]


def sockets_table(result: Any) -> list[str]:
    lines = [
        f"instance {result.instance}: {len(result.entries)} listening socket entries ({result.format})"
    ]
    rows = [
        (
            e.socket.protocol,
            f"*:{e.socket.port}"
            if e.socket.dual_stack
            else _endpoint(e.socket.address, e.socket.port),
            f"IPv{e.family}",
            e.verdict,
            _short(e.allowed_from) or "-",
            _rules_cell(e.allow_rules, e.deny_rules),
            "; ".join(e.notes) or "-",
        )
        for e in result.entries
    ]
    if rows:
        lines += _table(
            (
                "protocol",
                "address:port",
                "family",
                "verdict",
                "allowed from",
                "deciding rules",
                "notes",
            ),
            rows,
        )
    return lines + _idle_lines(result.idle, "allowed, nothing listening")


def capture_table(result: Any) -> list[str]:
    lines = [f"{result.packets} records read"]
    for instance in result.instances:
        lines.append(f"instance {instance.instance}:")
        rows = [
            (
                f"{s.protocol}/{s.port}",
                f"IPv{s.family}",
                s.verdict,
                str(s.answers),
                _short([str(a) for a in s.addresses]),
                _short([str(a) for a in s.blocked_remotes]) or "-",
                _rules_cell(s.allow_rules, s.deny_rules),
            )
            for s in instance.services
        ]
        if rows:
            table = _table(
                (
                    "service",
                    "family",
                    "verdict",
                    "answers",
                    "from",
                    "blocked remotes",
                    "deciding rules",
                ),
                rows,
            )
            lines += ["  " + line for line in table]
        else:
            lines.append("  no service seen answering")
        lines += ["  " + line for line in _idle_lines(instance.idle, "allowed but never answered")]
    return lines


def _capture_batches(paths: list[str], err: TextIO) -> Iterator[Any]:
    from classifier.pcap import open_capture

    for path in paths:
        with open_capture(path) as capture:
            try:
                yield from capture.batches()
            finally:
                for message in capture.warnings:
                    print(f"warning: {message}", file=err)


def run_exposure(
    args: argparse.Namespace, out: TextIO, err: TextIO, stdin: BinaryIO | None = None
) -> int:
    from classifier.analysis.exposure import capture_exposure, find_instance, sockets_exposure
    from classifier.analysis.keyspace import KeySpace
    from classifier.analysis.sockets import parse_sockets

    if args.instance is not None:
        if len(args.inputs) != 1:
            raise UsageError(
                f"exposure --instance takes one sockets file, got {len(args.inputs)} arguments"
            )
        inputs = [args.policy] + ([] if args.inputs[0] == "-" else args.inputs)
        if args.json not in (None, "-"):
            from classifier.report import check_outputs

            check_outputs(inputs, [args.json])
        policy = _load(args.policy, err)
        find_instance(policy, args.instance)
        data = _read_sockets_file(args.inputs[0], stdin)
        listing = parse_sockets(data, args.inputs[0])
        result: Any = sockets_exposure(policy, args.instance, listing, KeySpace(policy))
        lines = sockets_table(result)
    else:
        for path in args.inputs:
            if not os.path.exists(path):
                raise UsageError(f"{path}: no such capture file")
            if not os.path.isfile(path):
                raise UsageError(
                    f"{path}: not a regular file (a directory, pipe or device): give a capture file"
                )
        inputs = [args.policy, *args.inputs]
        if args.json not in (None, "-"):
            from classifier.report import check_outputs

            check_outputs(inputs, [args.json])
        policy = _load(args.policy, err)
        from classifier.engine import Engine

        engine = Engine(policy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = capture_exposure(
                policy, _capture_batches(args.inputs, err), engine.instance_of, KeySpace(policy)
            )
        lines = capture_table(result)
    document = result.to_json()
    if args.json == "-":
        json.dump(document, out, indent=2)
        out.write("\n")
        return EXIT_OK
    if args.json:
        _write_json(args.json, inputs, document)
    for line in lines:
        print(line, file=out)
    return EXIT_OK


__all__ = [
    "add_exposure_arguments",
    "add_lint_arguments",
    "capture_table",
    "lint_table",
    "run_exposure",
    "run_lint",
    "sockets_table",
    "why_not_sides",
]
