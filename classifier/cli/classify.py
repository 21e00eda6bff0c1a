"""`sgclassify classify`: run the pipeline, show progress, write the outputs, print the summary.

Before any record is classified: the policy loads (with `--strict`, without a warning), every
capture's header reads, and every output can be written (`-` is standard output, once at most;
a `.parquet` output needs pyarrow). A capture that becomes unreadable during the run stops it
with exit code 2, but the summary of what was classified before it is still printed and
written, that file listed `unreadable` in the JSON's `files`. Outputs are renamed into place
when complete: an interrupted run (Ctrl-C, exit 130) leaves none behind.

`--workers N` / `--scheduler ADDRESS` run the same classification on a Dask cluster
(`classifier.scale`, docs/scale.md) with the same outputs; a cluster's own failure (exit 1,
or 2 for a capture a worker cannot read) writes no output at all.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from classifier.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    add_captures,
    add_filter_option,
    add_strict,
    bounded_int,
    capture_filter,
    capture_gaps,
    check_captures,
    count,
    file_inputs,
    load_policy,
    print_warnings,
    progress_bar,
)
from classifier.errors import ClassifierError, ClusterError, UsageError
from classifier.limits import (
    DEFAULT_MAX_CONNECTIONS,
    DENIED_TUPLES_LIMIT,
    MAX_CONNECTIONS,
    MAX_FRAGMENTS,
)

STDOUT = "-"

DEFAULT_TOP = 10  # rows of the top-denied table without --top


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "classify",
        help="verdicts and statistics for whole captures",
        description="Classify every packet of the captures (in the order given, as one "
        "continuous capture) against the policy, with connection tracking unless --stateless, "
        "and print a summary: verdicts, reasons, hits per rule, rules never hit, top denied. "
        "An output given as '-' is written to standard output (one output at most), and the "
        "printed summary is then left out.",
    )
    parser.add_argument("--policy", required=True, metavar="POLICY", help="policy file")
    add_captures(parser)
    parser.add_argument(
        "--stateless", action="store_true", help="judge every packet by the rules alone"
    )
    parser.add_argument(
        "--max-connections",
        type=connection_limit,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=f"connections tracked at once (1..{MAX_CONNECTIONS:,}, default "
        f"{DEFAULT_MAX_CONNECTIONS:,}): when an allowed packet would create one more, the "
        "alive connection whose last packet is the oldest is forgotten (counted as evicted in "
        "the summary; its later packets are judged by the rules as new). The other tables "
        f"that grow with the traffic are bounded too: {MAX_FRAGMENTS:,} first fragments "
        "remembered at once (a first fragment beyond is not, and its later fragments are "
        f"judged without ports), {DENIED_TUPLES_LIMIT:,} distinct denied tuples counted "
        "(beyond, the least hit half is dropped and the summary says the counts are not "
        "exact)",
    )
    parser.add_argument(
        "--packets",
        metavar="OUT",
        help="write one row per packet: CSV, or JSON Lines (.jsonl) or Parquet (.parquet) "
        "by the extension",
    )
    parser.add_argument(
        "--flows",
        metavar="OUT",
        help="write one record per connection (in the order of their first packets): CSV, "
        "or JSON Lines (.jsonl) or Parquet (.parquet) by the extension; not with --stateless",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the summary as JSON")
    parser.add_argument(
        "--report",
        metavar="OUT.html",
        help="write the summary as one self-contained HTML page (offline)",
    )
    parser.add_argument(
        "--top",
        type=count,
        default=None,
        metavar="N",
        help="rows of the top-denied table, printed and in --json/--report (0..1000000, "
        "default 10); when given, also the most rows of the printed per-rule and "
        "per-instance tables (the N most hit; --json and --report keep every row)",
    )
    add_filter_option(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_strict(parser)
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


def connection_limit(text: str) -> int:
    return bounded_int(text, 1, MAX_CONNECTIONS, "a connection count")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.engine import Classification, Engine
    from classifier.engine.columns import Labels, result_table
    from classifier.report.outputs import check_outputs, open_output
    from classifier.report.summary import print_summary
    from classifier.report.tables import check_table_output

    if args.flows is not None and args.stateless:
        raise UsageError("--flows: connection records need connection tracking (not --stateless)")
    outputs = [args.packets, args.flows, args.json, args.report]
    check_outputs([args.policy, *file_inputs(args.pcaps)], outputs)
    check_table_output(args.packets, "--packets")
    check_table_output(args.flows, "--flows")
    bpf = capture_filter(args)
    scaled = _scale_options(args)
    policy = load_policy(args.policy, err, args.strict)
    repeated = check_captures(args.pcaps)
    print_warnings(repeated.values(), err)
    engine = Engine(policy)
    classification = Classification(
        engine,
        stateful=not args.stateless,
        capture_filter=bpf,
        max_connections=args.max_connections,
        flows=args.flows is not None,
        **scaled,
    )
    classification.on_note = lambda note: print_warnings([note], err)
    labels = Labels.of_engine(engine)
    failure: ClassifierError | None = None
    with (
        _terminate_as_interrupt(bool(scaled)),
        _packets_output(args.packets, out) as table,
        progress_bar(args.pcaps, args.quiet, err) as progress,
    ):
        try:
            for result in classification.run(args.pcaps, progress, results=table is not None):
                if table is not None:
                    table.write(result_table(result, labels))
        except ClusterError:
            raise  # no partial result from a failed cluster (scale.md section 5)
        except ClassifierError as error:
            failure = error
    if args.flows is not None:
        _write_flows(args.flows, classification, out)
    summary = classification.summary(DEFAULT_TOP if args.top is None else args.top)
    files = summary["files"]
    gaps = capture_gaps(files)
    for position, file in enumerate(files):
        print_warnings(file["warnings"], err)
        print_warnings([gaps[position]] if position in gaps else [], err)
    _add_warnings(files, repeated, gaps)
    if args.json:
        with open_output(args.json, out) as json_stream:
            assert json_stream is not None
            json.dump(summary, json_stream, indent=2)
            json_stream.write("\n")
    if args.report:
        from classifier.report.html import write_report

        with open_output(args.report, out) as report_stream:
            assert report_stream is not None
            write_report(summary, report_stream, args.policy)
    if STDOUT not in outputs:
        print_summary(summary, out, cap=args.top)
    if failure is not None:
        raise failure
    if args.strict and any(file["warnings"] for file in summary["files"]):
        print("error: capture warnings (--strict: warnings are errors)", file=err)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _add_warnings(
    files: list[dict[str, Any]], repeated: dict[int, str], gaps: dict[int, str]
) -> None:
    """The warnings about the combination of captures (a repeated capture, a gap of more than
    a day), added to the `files` entries they concern (by position)."""
    for found in (repeated, gaps):
        for position, warning in found.items():
            if position < len(files):
                files[position]["warnings"].append(warning)


def _write_flows(path: str, classification: Any, out: TextIO) -> None:
    """The run's connection records through the table writer, a row group at a time."""
    from classifier.engine.flows import FLOW_COLUMNS
    from classifier.report.tables import ROW_GROUP_ROWS, open_table

    table = classification.flow_table()
    rows = len(table["index"])
    with open_table(path, FLOW_COLUMNS, out=out, option="--flows") as writer:
        for start in range(0, max(rows, 1), ROW_GROUP_ROWS):
            part = slice(start, start + ROW_GROUP_ROWS)
            writer.write(
                {
                    name: (column[0][part], column[1])
                    if isinstance(column, tuple)
                    else column[part]
                    for name, column in table.items()
                }
            )


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

    where = "--workers" if args.workers is not None else "--scheduler"
    if args.flows is not None:
        raise UsageError(
            f"--flows: connection records are written by one process only (not with {where})"
        )
    require_dask(where)
    from classifier.scale.blocks import refuse_streams

    for path in args.pcaps:  # before a cluster starts: input the workers cannot read by blocks
        refuse_streams(path)
    return {
        "workers": args.workers,
        "client": args.scheduler,
        "blocksize": args.blocksize or DEFAULT_BLOCKSIZE,
    }


@contextmanager
def _terminate_as_interrupt(active: bool) -> Iterator[None]:
    """SIGTERM stops a run on a cluster as Ctrl-C does (its tasks cancelled, its local
    cluster stopped, `interrupted`, exit 130): it goes to the SIGINT handler of the moment
    (the scale-out's, which remembers it; ignored while a cluster shuts down)."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signum, frame)
        elif handler != signal.SIG_IGN:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _packets_output(path: str | None, out: TextIO) -> Iterator[Any]:
    if path is None:
        yield None
        return
    from classifier.engine.columns import PACKET_COLUMNS
    from classifier.report.tables import open_table

    with open_table(path, PACKET_COLUMNS, out=out, option="--packets") as table:
        yield table
