"""`sgclassify packets PCAP [--csv OUT]`: the decoder alone, one CSV row per record."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from classifier.cli.common import (
    EXIT_OK,
    add_filter_option,
    capture_filter,
    capture_path,
    check_captures,
    file_inputs,
    print_warnings,
)
from classifier.pcap.dump import CSV_COLUMNS


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "packets",
        help="decode a capture: one row per record",
        description="Decode PCAP (pcap or pcapng, any supported link type) and print one CSV "
        f"row per record: {','.join(CSV_COLUMNS)}. Empty cells where a field does not "
        "apply; `reason` says why a malformed row is malformed.",
    )
    parser.add_argument(
        "pcap",
        metavar="PCAP",
        help="capture file (pcap or pcapng, plain or gzip/bzip2/xz/zstd); - reads standard input",
    )
    parser.add_argument(
        "--csv", metavar="OUT", help="write the rows to OUT instead of stdout ('-': stdout)"
    )
    add_filter_option(parser)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.pcap.dump import dump_packets
    from classifier.report.outputs import check_outputs, open_output

    pcaps = [capture_path(args.pcap)]
    check_outputs(file_inputs(pcaps), [args.csv])
    bpf = capture_filter(args)  # a bad filter is bad input before any capture is read
    check_captures(pcaps)
    with open_output(args.csv or "-", out) as stream:
        assert stream is not None
        summary = dump_packets(pcaps, stream, capture_filter=bpf)
    print_warnings(summary.warnings, err)
    if summary.records == 0 and not summary.damaged:
        print(f"warning: {args.pcap}: the capture holds no records", file=err)
    if bpf is not None:
        print(f"--filter {args.filter!r}: {summary.filtered:,} records filtered out", file=err)
    return EXIT_OK
