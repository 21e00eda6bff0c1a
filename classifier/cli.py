"""The `sgclassify` command: argument parsing and printing only.

Every command turns a ClassifierError into one line per problem on stderr and exit code 2;
nothing the user types or feeds in produces a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from classifier.errors import ClassifierError, UsageError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2

DESCRIPTION = """\
What would these security-group rules have done to this traffic?

Load a policy of security groups, IP address groups and instances (YAML or JSON, the cloud
API's field names), then ask about one packet (check) or classify whole captures (classify).
"""

EPILOG = """\
examples:
  sgclassify validate examples/web-db.yaml
  sgclassify check --policy examples/web-db.yaml --src 203.0.113.7 --dst 10.0.1.10 --proto tcp --dport 443
  sgclassify packets pcaps/web.pcap --csv web-packets.csv
  sgclassify classify --policy examples/web-db.yaml pcaps/*.pcap --json summary.json
  sgclassify lint examples/web-db.yaml --fail-on warning
  sgclassify exposure --policy examples/web-db.yaml --instance web-1 listening.txt

exit codes: 0 ok, 2 bad input (policy, capture or arguments), 1 internal error.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every bad argument takes the same road."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sgclassify",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from classifier import __version__

    parser.add_argument("--version", action="version", version=f"sgclassify {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser(
        "validate",
        help="check a policy file and count what it holds",
        description="Load POLICY and report every problem in it (file, object, field), "
        "or print 'ok: N groups, M rules, K instances'. Warnings (unknown fields, duplicate "
        "rules) go to stderr and do not fail the command.",
    )
    validate.add_argument("policy", metavar="POLICY", help="policy file (YAML or JSON)")

    check = commands.add_parser(
        "check",
        help="what happens to one packet, and which rule decides",
        description="Evaluate one packet from --src to --dst against the policy: the sender's "
        "egress side if --src is an instance, the receiver's ingress side if --dst is one. "
        "Without --dport (tcp/udp) or --icmp-type (icmp) the packet's ports are unknown, as for "
        "a non-first fragment: only rules without a port/type restriction can match it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: is TCP 80 on my server open to the internet?\n"
        "  sgclassify check --policy examples/web-db.yaml --src 203.0.113.7 "
        "--dst 10.0.1.10 --proto tcp --dport 80",
    )
    check.add_argument("--policy", required=True, metavar="POLICY", help="policy file")
    check.add_argument("--src", required=True, metavar="IP", help="source address")
    check.add_argument("--dst", required=True, metavar="IP", help="destination address")
    check.add_argument(
        "--proto",
        required=True,
        metavar="PROTO",
        help="tcp, udp, sctp, icmp, icmpv6, gre, or an IP protocol number 0..255",
    )
    check.add_argument("--dport", type=_port, metavar="N", help="destination port (tcp/udp/sctp)")
    check.add_argument("--sport", type=_port, metavar="N", help="source port (default 40000)")
    check.add_argument("--icmp-type", type=_byte, metavar="T", help="ICMP type (icmp/icmpv6)")
    check.add_argument("--icmp-code", type=_byte, metavar="C", help="ICMP code (default 0)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument(
        "--why-not",
        action="store_true",
        help="per side, the near misses (rules failing one condition) and pre-empted rules",
    )

    packets = commands.add_parser(
        "packets",
        help="decode a capture: one row per record",
        description="Decode PCAP (pcap or pcapng, any supported link type) and print one CSV "
        "row per record: index,ts_ns,wire_len,ip_version,src,dst,protocol,sport,dport,"
        "icmp_type,icmp_code,fragment,status. Empty cells where a field does not apply.",
    )
    packets.add_argument("pcap", metavar="PCAP", help="capture file")
    packets.add_argument("--csv", metavar="OUT", help="write the rows to OUT instead of stdout")

    classify = commands.add_parser(
        "classify",
        help="verdicts and statistics for whole captures",
        description="Classify every packet of the captures (in the order given, as one "
        "continuous capture) against the policy, with connection tracking unless --stateless, "
        "and print a summary: verdicts, reasons, hits per rule, rules never hit, top denied.",
    )
    classify.add_argument("--policy", required=True, metavar="POLICY", help="policy file")
    classify.add_argument("pcaps", nargs="+", metavar="PCAP", help="capture files")
    classify.add_argument(
        "--stateless", action="store_true", help="judge every packet by the rules alone"
    )
    classify.add_argument("--packets", metavar="OUT.csv", help="write one row per packet")
    classify.add_argument("--json", metavar="OUT.json", help="write the summary as JSON")
    classify.add_argument(
        "--top", type=_count, default=10, metavar="N", help="rows of the top-denied table (0..1000000)"
    )
    classify.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    from classifier.analysis.commands import add_exposure_arguments, add_lint_arguments

    add_lint_arguments(
        commands.add_parser(
            "lint",
            help="shadowed, redundant, conflicting, exposed and unused rules",
            description="Report what is wrong with POLICY before any traffic (exact, per "
            "instance group sequence): shadowed, redundant, conflicting, empty, exposed and "
            "disabled rules, unused groups and address groups.",
        )
    )
    add_exposure_arguments(
        commands.add_parser(
            "exposure",
            help="listening or answering services against the rules",
            description="Compare an instance's listening sockets (saved netstat/ss output, "
            "with --instance) or the services seen answering in captures with what its "
            "ingress rules let in, and list the ports the rules open where nothing listens.",
        )
    )
    return parser


def _port(text: str) -> int:
    return _bounded_int(text, 0, 65535, "a port")


def _count(text: str) -> int:
    return _bounded_int(text, 0, 1_000_000, "a count")


def _byte(text: str) -> int:
    return _bounded_int(text, 0, 255, "a value")


def _bounded_int(text: str, lo: int, hi: int, what: str) -> int:
    try:
        if not (text.isascii() and len(text) <= 12):
            raise ValueError
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({lo}..{hi})") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{value} is not {what} ({lo}..{hi})")
    return value


# --- commands --------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.loaders import load_policy, policy_summary

    policy = load_policy(args.policy)
    for warning in policy.warnings:
        print(f"warning: {warning}", file=err)
    groups, rules, instances = policy_summary(policy)
    print(f"ok: {groups} groups, {rules} rules, {instances} instances", file=out)
    return EXIT_OK


PROTOCOL_WORDS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58, "gre": 47}


def _parse_protocol(text: str) -> int:
    word = text.strip().lower()
    if word in PROTOCOL_WORDS:
        return PROTOCOL_WORDS[word]
    try:
        number = int(word, 10)
    except ValueError:
        number = -1
    if not 0 <= number <= 255:
        raise UsageError(
            f"--proto {text!r}: expected tcp, udp, sctp, icmp, icmpv6, gre or a number 0..255"
        )
    return number


def _parse_ip(text: str, option: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an IPv4 or IPv6 address") from None


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier import reference
    from classifier.loaders import load_policy
    from classifier.packets import Packet

    src = _parse_ip(args.src, "--src")
    dst = _parse_ip(args.dst, "--dst")
    if src.version != dst.version:
        raise UsageError(f"--src {src} and --dst {dst} are of different IP versions")
    protocol = _parse_protocol(args.proto)
    port_protocol = protocol in (6, 17, 132)
    icmp_protocol = protocol in (1, 58)
    if args.dport is not None and not port_protocol:
        raise UsageError(f"--dport applies to tcp, udp and sctp, not to protocol {args.proto}")
    if (args.icmp_type is not None or args.icmp_code is not None) and not icmp_protocol:
        raise UsageError(f"--icmp-type/--icmp-code apply to icmp and icmpv6, not to {args.proto}")
    if args.icmp_code is not None and args.icmp_type is None:
        raise UsageError("--icmp-code needs --icmp-type")
    if args.sport is not None and args.dport is None:
        raise UsageError("--sport needs --dport (only the destination port is matched)")
    if protocol == 1 and src.version == 6 or protocol == 58 and src.version == 4:
        raise UsageError(f"protocol {args.proto} does not go with IPv{src.version} addresses")
    policy = load_policy(args.policy)
    for warning in policy.warnings:
        print(f"warning: {warning}", file=err)

    ports_known = port_protocol and args.dport is not None
    icmp_known = icmp_protocol and args.icmp_type is not None
    packet = Packet(
        ip_version=src.version,
        src=src,
        dst=dst,
        protocol=protocol,
        sport=(args.sport if args.sport is not None else 40000) if ports_known else None,
        dport=args.dport if ports_known else None,
        icmp_type=args.icmp_type if icmp_known else None,
        icmp_code=(args.icmp_code or 0) if icmp_known else None,
    )
    verdict = reference.evaluate(policy, packet)
    why_not: list[Any] = []
    if args.why_not:
        from classifier.analysis.commands import why_not_sides

        why_not = why_not_sides(policy, packet)
    unknown_ports = (port_protocol and not ports_known) or (icmp_protocol and not icmp_known)
    if unknown_ports:
        what = "destination port" if port_protocol else "ICMP type"
        print(
            f"note: no {what} given: evaluated as a packet whose ports are unknown "
            "(only rules without a port/type restriction can match)",
            file=err if args.json else out,  # --json prints exactly one object on stdout
        )
    if args.json:
        document = _check_json(verdict)
        for side, explained in zip(document["sides"], why_not, strict=False):
            side.update(explained.to_json())
        json.dump(document, out)
        out.write("\n")
        return EXIT_OK
    if not verdict.sides:
        print(f"{src} -> {dst}: neither address belongs to an instance of the policy", file=out)
    for number, side in enumerate(verdict.sides):
        if side.rule is not None:
            rule = side.rule
            decided = (
                f"rule {rule.id} of group {rule.group_id} "
                f"(priority {rule.priority}, {rule.action}, {rule.protocol_text} "
                f"{rule.ports_text if rule.ports is not None else ''})".replace(" )", ")")
            )
            print(f"{side.instance_id} {side.direction}: {side.verdict} by {decided}", file=out)
        else:
            print(f"{side.instance_id} {side.direction}: deny: implicit deny (no rule matched)", file=out)
        for line in why_not[number].lines() if why_not else ():
            print(line, file=out)
    print(f"verdict: {verdict.verdict}", file=out)
    return EXIT_OK


def _check_json(verdict: Any) -> dict[str, Any]:
    return {
        "verdict": verdict.verdict,
        "sides": [
            {
                "instance": side.instance_id,
                "direction": side.direction,
                "verdict": side.verdict,
                "group": side.rule.group_id if side.rule is not None else None,
                "rule": side.rule.id if side.rule is not None else None,
                "reason": side.reason,
            }
            for side in verdict.sides
        ],
    }


def cmd_packets(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.dump import dump_packets
    from classifier.report import check_outputs, open_output

    if args.csv:
        check_outputs([args.pcap], [args.csv])
        with open_output(args.csv) as stream:
            assert stream is not None
            summary = dump_packets([args.pcap], stream)
    else:
        summary = dump_packets([args.pcap], out)
    for warning in summary.warnings:
        print(f"warning: {warning}", file=err)
    return EXIT_OK


def cmd_classify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.report import run_classify

    return run_classify(args, out, err)


def cmd_lint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.analysis.commands import run_lint

    return run_lint(args, out, err)


def cmd_exposure(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.analysis.commands import run_exposure

    return run_exposure(args, out, err)


COMMANDS = {
    "validate": cmd_validate,
    "check": cmd_check,
    "packets": cmd_packets,
    "classify": cmd_classify,
    "lint": cmd_lint,
    "exposure": cmd_exposure,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    # a closed stdout/stderr (`sgclassify ... >&-`) leaves None: write nowhere, not crash
    out = out or sys.stdout or open(os.devnull, "w")  # noqa: SIM115
    err = err or sys.stderr or open(os.devnull, "w")  # noqa: SIM115
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(out)
            return EXIT_OK
        return COMMANDS[args.command](args, out, err)
    except ClassifierError as error:
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"error: {line}", file=err)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except BrokenPipeError:
        # `sgclassify packets x.pcap | head`: the reader went away; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as error:  # writing the results failed: a full disk, a vanished device
        where = error.filename or "output"
        print(f"error: {where}: cannot write: {error.strerror or error}", file=err)
        return EXIT_BAD_INPUT
    except Exception as error:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("SGCLASSIFY_DEBUG") == "1":
            raise
        print(
            f"internal error: {type(error).__name__}: {error} "
            "(please report it; SGCLASSIFY_DEBUG=1 shows the traceback)",
            file=err,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
