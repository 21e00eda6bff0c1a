"""`sgclassify check`: what happens to one packet, and which rule decides each side.

The packet goes through the same engine as every capture (a one-packet batch), so `check` and
`classify` cannot disagree.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from typing import TYPE_CHECKING, Any, TextIO

from classifier.cli.common import EXIT_OK, byte, port, print_warnings
from classifier.codes import ICMP_PROTOCOLS, PORT_PROTOCOLS, PROTO_ICMP, PROTO_ICMPV6
from classifier.errors import UsageError

if TYPE_CHECKING:
    from classifier.engine import PacketDecision

PROTOCOL_WORDS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58, "gre": 47}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "check",
        help="what happens to one packet, and which rule decides",
        description="Evaluate one packet from --src to --dst against the policy: the sender's "
        "egress side if --src is an instance, the receiver's ingress side if --dst is one. "
        "Without --dport (tcp/udp) or --icmp-type (icmp) the packet's ports are unknown, as for "
        "a non-first fragment: only rules without a port/type restriction can match it. "
        "With --icmp-type but without --icmp-code the code is unknown: a rule that restricts "
        "the code does not match, one that restricts only the type can.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: is TCP 80 on my server open to the internet?\n"
        "  sgclassify check --policy examples/web-db.yaml --src 203.0.113.7 "
        "--dst 10.0.1.10 --proto tcp --dport 80",
    )
    parser.add_argument("--policy", required=True, metavar="POLICY", help="policy file")
    parser.add_argument("--src", required=True, metavar="IP", help="source address")
    parser.add_argument("--dst", required=True, metavar="IP", help="destination address")
    parser.add_argument(
        "--proto",
        required=True,
        metavar="PROTO",
        help="tcp, udp, sctp, icmp, icmpv6, gre, or an IP protocol number 0..255",
    )
    parser.add_argument("--dport", type=port, metavar="N", help="destination port (tcp/udp/sctp)")
    parser.add_argument("--sport", type=port, metavar="N", help="source port (default 40000)")
    parser.add_argument("--icmp-type", type=byte, metavar="T", help="ICMP type (icmp/icmpv6)")
    parser.add_argument("--icmp-code", type=byte, metavar="C", help="ICMP code (default: unknown)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--why-not",
        action="store_true",
        help="per side, the near misses (rules failing one condition) and pre-empted rules",
    )


def parse_protocol(text: str) -> int:
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


def parse_ip(text: str, option: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an IPv4 or IPv6 address") from None


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.engine import Engine
    from classifier.packets import Packet
    from classifier.policy import load_policy

    src = parse_ip(args.src, "--src")
    dst = parse_ip(args.dst, "--dst")
    if src.version != dst.version:
        raise UsageError(f"--src {src} and --dst {dst} are of different IP versions")
    protocol = parse_protocol(args.proto)
    port_protocol = protocol in PORT_PROTOCOLS
    icmp_protocol = protocol in ICMP_PROTOCOLS
    if args.dport is not None and not port_protocol:
        raise UsageError(f"--dport applies to tcp, udp and sctp, not to protocol {args.proto}")
    if (args.icmp_type is not None or args.icmp_code is not None) and not icmp_protocol:
        raise UsageError(f"--icmp-type/--icmp-code apply to icmp and icmpv6, not to {args.proto}")
    if args.icmp_code is not None and args.icmp_type is None:
        raise UsageError("--icmp-code needs --icmp-type")
    if args.sport is not None and args.dport is None:
        raise UsageError("--sport needs --dport (only the destination port is matched)")
    if protocol == PROTO_ICMP and src.version == 6 or protocol == PROTO_ICMPV6 and src.version == 4:
        raise UsageError(f"protocol {args.proto} does not go with IPv{src.version} addresses")
    policy = load_policy(args.policy)
    print_warnings(policy.warnings, err)

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
        icmp_code=args.icmp_code if icmp_known else None,
    )
    decision = Engine(policy).decide(packet)
    why_not: list[Any] = []
    if args.why_not:
        from classifier.analysis.keyspace import KeySpace
        from classifier.analysis.whynot import explain

        why_not = list(explain(KeySpace(policy), packet))  # the evaluated sides, egress first
    unknown_ports = (port_protocol and not ports_known) or (icmp_protocol and not icmp_known)
    if unknown_ports:
        what = "destination port" if port_protocol else "ICMP type"
        print(
            f"note: no {what} given: evaluated as a packet whose ports are unknown "
            "(only rules without a port/type restriction can match)",
            file=err if args.json else out,  # --json prints exactly one object on stdout
        )
    elif icmp_known and args.icmp_code is None:
        print(
            "note: no ICMP code given: evaluated as a packet whose ICMP code is unknown "
            "(a rule that restricts the code does not match; one that restricts only the "
            "type can)",
            file=err if args.json else out,
        )
    if args.json:
        document = check_json(decision)
        for side, explained in zip(document["sides"], why_not, strict=False):
            side.update(explained.to_json())
        json.dump(document, out)
        out.write("\n")
        return EXIT_OK
    if not decision.sides:
        print(f"{src} -> {dst}: neither address belongs to an instance of the policy", file=out)
    for number, side in enumerate(decision.sides):
        if side.rule is None:
            print(
                f"{side.instance_id} {side.direction}: deny: implicit deny (no rule matched)",
                file=out,
            )
        else:
            rule = side.rule
            decided = (
                f"rule {rule.id} of group {rule.group_id} "
                f"(priority {rule.priority}, {rule.action}, {rule.protocol_text} "
                f"{rule.ports_text if rule.ports is not None else ''})".replace(" )", ")")
            )
            print(f"{side.instance_id} {side.direction}: {side.verdict} by {decided}", file=out)
        for line in why_not[number].lines() if why_not else ():
            print(line, file=out)
    print(f"verdict: {decision.verdict}", file=out)
    return EXIT_OK


def check_json(decision: PacketDecision) -> dict[str, Any]:
    return {
        "verdict": decision.verdict,
        "sides": [
            {
                "instance": side.instance_id,
                "direction": side.direction,
                "verdict": side.verdict,
                "group": side.rule.group_id if side.rule is not None else None,
                "rule": side.rule.id if side.rule is not None else None,
                "reason": side.reason,
            }
            for side in decision.sides
        ],
    }
