"""`sgclassify packets PCAP [--csv OUT]`: the decoder alone, one CSV row per record."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from classifier.cli.common import (
    EXIT_OK,
    add_filter_option,
    capture_filter,
    capture_paths,
    file_inputs,
    print_warnings,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "packets",
        help="decode a capture: one row per record",
        description="Decode PCAP (pcap or pcapng, any supported link type) and print one CSV "
        "row per record: index,ts_ns,wire_len,ip_version,src,dst,protocol,sport,dport,"
        "icmp_type,icmp_code,fragment,status. Empty cells where a field does not apply.",
    )
    parser.add_argument(
        "pcap",
        metavar="PCAP",
        help="capture file (pcap or pcapng, plain or gzip/bzip2/xz/zstd); - reads standard input",
    )
    parser.add_argument("--csv", metavar="OUT", help="write the rows to OUT instead of stdout")
    add_filter_option(parser)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.pcap.dump import dump_packets
    from classifier.report.outputs import check_outputs, open_output

    pcaps = capture_paths([args.pcap])
    bpf = capture_filter(args)
    if args.csv:
        check_outputs(file_inputs(pcaps), [args.csv])
        with open_output(args.csv) as stream:
            assert stream is not None
            summary = dump_packets(pcaps, stream, capture_filter=bpf)
    else:
        summary = dump_packets(pcaps, out, capture_filter=bpf)
    print_warnings(summary.warnings, err)
    if bpf is not None:
        print(f"--filter {args.filter!r}: {summary.filtered:,} records filtered out", file=err)
    return EXIT_OK
