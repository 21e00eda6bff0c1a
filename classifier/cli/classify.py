"""`sgclassify classify`: run the pipeline, show progress, write the outputs, print the summary.

A capture that cannot be read stops the run with exit code 2, but the summary of what was
classified before it is still printed and written.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from classifier.cli.common import (
    add_filter_option,
    capture_filter,
    capture_paths,
    count,
    file_inputs,
    print_warnings,
)
from classifier.errors import ClassifierError, UsageError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "classify",
        help="verdicts and statistics for whole captures",
        description="Classify every packet of the captures (in the order given, as one "
        "continuous capture) against the policy, with connection tracking unless --stateless, "
        "and print a summary: verdicts, reasons, hits per rule, rules never hit, top denied.",
    )
    parser.add_argument("--policy", required=True, metavar="POLICY", help="policy file")
    parser.add_argument(
        "pcaps",
        nargs="+",
        metavar="PCAP",
        help="capture files (pcap or pcapng, plain or gzip/bzip2/xz/zstd); - reads standard "
        "input (once)",
    )
    parser.add_argument(
        "--stateless", action="store_true", help="judge every packet by the rules alone"
    )
    parser.add_argument("--packets", metavar="OUT.csv", help="write one row per packet")
    parser.add_argument("--json", metavar="OUT.json", help="write the summary as JSON")
    parser.add_argument(
        "--report",
        metavar="OUT.html",
        help="write the summary as one self-contained HTML page (offline)",
    )
    parser.add_argument(
        "--top",
        type=count,
        default=10,
        metavar="N",
        help="rows of the top-denied table (0..1000000)",
    )
    add_filter_option(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.engine import Classification, Engine
    from classifier.policy import load_policy
    from classifier.report.outputs import PacketCsvWriter, check_outputs, open_output
    from classifier.report.summary import print_summary

    args.pcaps = capture_paths(args.pcaps)
    for path in file_inputs(args.pcaps):
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such capture file")
        if not (os.path.isfile(path) or stat.S_ISFIFO(os.stat(path).st_mode)):
            raise UsageError(
                f"{path}: not a regular file or a pipe (a directory or device): give a capture file"
            )
    check_outputs([args.policy, *file_inputs(args.pcaps)], [args.packets, args.json, args.report])
    bpf = capture_filter(args)
    policy = load_policy(args.policy)
    print_warnings(policy.warnings, err)
    engine = Engine(policy)
    run = Classification(engine, stateful=not args.stateless, capture_filter=bpf)
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
        print_warnings(file["warnings"], err)
    if args.json:
        with open_output(args.json) as json_stream:
            assert json_stream is not None
            json.dump(summary, json_stream, indent=2)
            json_stream.write("\n")
    if args.report:
        from classifier.report.html import write_report

        with open_output(args.report) as report_stream:
            assert report_stream is not None
            write_report(summary, report_stream, args.policy)
    print_summary(summary, out)
    if failure is not None:
        raise failure
    return 0


@contextmanager
def _progress(args: argparse.Namespace, err: TextIO) -> Iterator[Any]:
    """A progress bar by bytes read, on a terminal only, and never with -q."""
    if args.quiet or not err.isatty():
        yield None
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    sizes = {path: _size(path) for path in args.pcaps}
    total = sum(sizes.values())
    offsets: dict[str, int] = {}
    running = 0
    for path in args.pcaps:
        offsets[path] = running
        running += sizes[path]
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
            bar.update(
                task,
                completed=offsets.get(path, 0) + position,
                description=escape(os.path.basename(path)),
            )

        yield update


def _size(path: str) -> int:
    """A capture's size for the progress bar: 0 for standard input or a pipe."""
    if not file_inputs([path]):
        return 0
    try:
        info = os.stat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0
