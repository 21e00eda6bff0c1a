"""`sgclassify exposure`: listening sockets or answering services against the rules.

Sockets mode (`--instance ID SOCKETS_FILE`) reads a saved netstat/ss listing; capture mode reads
captures. The verdicts are `classifier.analysis.exposure`'s; this module reads the inputs and
prints or writes the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, TextIO

from classifier.cli.common import (
    EXIT_OK,
    add_strict,
    check_captures,
    load_policy,
    print_warnings,
)
from classifier.cli.text import short, table, write_json
from classifier.errors import UsageError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "exposure",
        help="listening or answering services against the rules",
        description="Compare an instance's listening sockets (saved netstat/ss output, "
        "with --instance) or the services seen answering in captures with what its "
        "ingress rules let in, and list the ports the rules open where nothing listens.",
    )
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
    add_strict(parser)


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
        parts.append(f"allow {short(allow)}")
    if deny:
        parts.append(f"deny {short(deny)}")
    return "; ".join(parts) or "-"


def _idle_lines(idle: Sequence[Any], title: str) -> list[str]:
    if not idle:
        return [f"{title}: none"]
    rows = [(i.rule, i.group, i.protocol, f"IPv{i.family}", short(i.ports, 8)) for i in idle]
    return [
        f"{title}:",
        *("  " + line for line in table(("rule", "group", "protocol", "family", "ports"), rows)),
    ]


def sockets_table(result: Any) -> list[str]:
    lines = [
        f"instance {result.instance}: {len(result.entries)} listening socket entries "
        f"({result.format})"
    ]
    rows = [
        (
            e.socket.protocol,
            f"*:{e.socket.port}"
            if e.socket.dual_stack
            else _endpoint(e.socket.address, e.socket.port),
            f"IPv{e.family}",
            e.verdict,
            short(e.allowed_from) or "-",
            _rules_cell(e.allow_rules, e.deny_rules),
            "; ".join(e.notes) or "-",
        )
        for e in result.entries
    ]
    if rows:
        lines += table(
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
                short([str(a) for a in s.addresses]),
                short([str(a) for a in s.blocked_remotes]) or "-",
                _rules_cell(s.allow_rules, s.deny_rules),
            )
            for s in instance.services
        ]
        if rows:
            rendered = table(
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
            lines += ["  " + line for line in rendered]
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


def run(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: BinaryIO | None = None) -> int:
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
            from classifier.report.outputs import check_outputs

            check_outputs(inputs, [args.json])
        policy = load_policy(args.policy, err, args.strict)
        find_instance(policy, args.instance)
        data = _read_sockets_file(args.inputs[0], stdin)
        listing = parse_sockets(data, args.inputs[0])
        result: Any = sockets_exposure(policy, args.instance, listing, KeySpace(policy))
        lines = sockets_table(result)
    else:
        inputs = [args.policy, *args.inputs]
        if args.json not in (None, "-"):
            from classifier.report.outputs import check_outputs

            check_outputs(inputs, [args.json])
        policy = load_policy(args.policy, err, args.strict)
        print_warnings(check_captures(args.inputs).values(), err)
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
        write_json(args.json, inputs, document)
    for line in lines:
        print(line, file=out)
    return EXIT_OK
