"""`sgclassify classify`: run the pipeline, show progress, write the outputs, print the summary.

A capture that cannot be read stops the run with exit code 2, but the summary of what was
classified before it is still printed and written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from classifier.cli.common import bounded_int, count, print_warnings
from classifier.errors import ClassifierError, ClusterError, UsageError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "classify",
        help="verdicts and statistics for whole captures",
        description="Classify every packet of the captures (in the order given, as one "
        "continuous capture) against the policy, with connection tracking unless --stateless, "
        "and print a summary: verdicts, reasons, hits per rule, rules never hit, top denied.",
    )
    parser.add_argument("--policy", required=True, metavar="POLICY", help="policy file")
    parser.add_argument("pcaps", nargs="+", metavar="PCAP", help="capture files")
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
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    scale = parser.add_argument_group(
        "on a Dask cluster (the same results as one process; needs the extra: "
        "pip install 'sg-classifier[dask]')"
    )
    scale.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="start a local cluster of N worker processes (1..256) for this run",
    )
    scale.add_argument(
        "--scheduler",
        type=_scheduler,
        metavar="ADDRESS",
        help="run on the existing cluster whose scheduler is at [tcp://]host:port (every "
        "worker reads the captures at their absolute paths)",
    )
    scale.add_argument(
        "--blocksize",
        type=_blocksize,
        metavar="SIZE",
        help="the most capture bytes one task reads (default 64M; suffixes K, M, G)",
    )


def _workers(text: str) -> int:
    return bounded_int(text, 1, 256, "a number of worker processes")


def _scheduler(text: str) -> str:
    from classifier.scale import parse_address

    try:
        return parse_address(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error).split(": ", 1)[1]) from None


def _blocksize(text: str) -> int:
    from classifier.scale import parse_blocksize

    try:
        return parse_blocksize(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error).split(": ", 1)[1]) from None


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.engine import Classification, Engine
    from classifier.policy import load_policy
    from classifier.report.outputs import PacketCsvWriter, check_outputs, open_output
    from classifier.report.summary import print_summary

    for path in args.pcaps:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such capture file")
        if not os.path.isfile(path):
            raise UsageError(
                f"{path}: not a regular file (a directory, pipe or device): give a capture file"
            )
    check_outputs([args.policy, *args.pcaps], [args.packets, args.json, args.report])
    scaled = _scale_options(args)
    policy = load_policy(args.policy)
    print_warnings(policy.warnings, err)
    engine = Engine(policy)
    run = Classification(engine, stateful=not args.stateless, **scaled)
    run.on_note = lambda note: print_warnings([note], err)
    failure: ClassifierError | None = None
    try:
        with (
            _terminate_as_interrupt(bool(scaled)),
            open_output(args.packets) as packets_stream,
            _progress(args, err) as progress,
        ):
            writer = PacketCsvWriter(packets_stream, engine) if packets_stream else None
            try:
                for result in run.run(args.pcaps, progress, results=writer is not None):
                    if writer is not None:
                        writer.write(result)
            except ClusterError:
                raise
            except ClassifierError as error:
                failure = error
    except BaseException as error:
        # a cluster's failure, an interrupt, anything but the capture errors one process has
        # too: no partial result (scale.md section 5)
        ours = isinstance(error, ClusterError) or not isinstance(error, ClassifierError)
        if scaled and args.packets and ours:
            with contextlib.suppress(OSError):
                os.remove(args.packets)
        raise
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


def _scale_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of a run on a cluster (none: one process, and Dask is not imported)."""
    if args.workers is not None and args.scheduler is not None:
        raise UsageError("give --workers (a local cluster) or --scheduler (a cluster), not both")
    if args.workers is None and args.scheduler is None:
        if args.blocksize is not None:
            raise UsageError("--blocksize goes with --workers or --scheduler")
        return {}
    from classifier.scale import DEFAULT_BLOCKSIZE
    from classifier.scale.options import require_dask

    require_dask("--workers" if args.workers is not None else "--scheduler")
    return {
        "workers": args.workers,
        "client": args.scheduler,
        "blocksize": args.blocksize or DEFAULT_BLOCKSIZE,
    }


@contextmanager
def _terminate_as_interrupt(active: bool) -> Iterator[None]:
    """SIGTERM stops a run on a cluster as Ctrl-C does (its tasks cancelled, its local
    cluster stopped, `interrupted`, exit 130)."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress(args: argparse.Namespace, err: TextIO) -> Iterator[Any]:
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
            bar.update(
                task,
                completed=offsets.get(path, 0) + position,
                description=escape(os.path.basename(path)),
            )

        yield update
