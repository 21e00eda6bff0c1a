"""`sgclassify check`: what happens to one packet, and which rule decides each side.

The packet goes through the same engine as every capture (a one-packet batch), so `check` and
`classify` cannot disagree.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from typing import TYPE_CHECKING, Any, TextIO

from classifier.cli.common import EXIT_OK, add_strict, byte, load_policy, port
from classifier.codes import (
    ICMP_PROTOCOLS,
    PORT_PROTOCOLS,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_SCTP,
)
from classifier.errors import UsageError

if TYPE_CHECKING:
    from classifier.engine import PacketDecision
    from classifier.policy import Policy
    from classifier.policy.model import IPAddress


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
    parser.add_argument(
        "--src", required=True, metavar="IP|ID", help="source address, or an instance id"
    )
    parser.add_argument(
        "--dst", required=True, metavar="IP|ID", help="destination address, or an instance id"
    )
    parser.add_argument(
        "--proto",
        required=True,
        metavar="PROTO",
        help="tcp, udp, sctp, icmp, icmpv6, gre (the policy's words, any case), or an IP "
        "protocol number 1..255",
    )
    parser.add_argument("--dport", type=port, metavar="N", help="destination port (tcp/udp/sctp)")
    parser.add_argument("--sport", type=port, metavar="N", help="source port (default 40000)")
    parser.add_argument(
        "--icmp-type",
        metavar="T",
        help="ICMP type (icmp/icmpv6): a number, or a type name of the policy format "
        "('echo', 'port unreachable', ...: it fixes the code too)",
    )
    parser.add_argument("--icmp-code", type=byte, metavar="C", help="ICMP code (default: unknown)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--why-not",
        action="store_true",
        help="per side, the near misses (rules failing one condition) and pre-empted rules",
    )
    add_strict(parser)


def parse_protocol(text: str) -> int:
    """The policy's protocol words (tcp, udp, icmp, icmpv6, gre, ipv6-icmp, any case), sctp,
    or a protocol number 1..255: a packet has one protocol, so "all" is refused."""
    from classifier.policy.fields import Invalid
    from classifier.policy.fields import parse_protocol as policy_protocol

    if text.strip().lower() == "sctp":
        return PROTO_SCTP
    try:
        number = policy_protocol(text)
    except Invalid:
        number = None
    if number is None:
        raise UsageError(
            f"--proto: {text!r} is not a packet's protocol: expected tcp, udp, sctp, icmp, "
            "icmpv6, gre or a protocol number 1..255"
        )
    return number


def parse_icmp_type(text: str, protocol: int) -> tuple[int, int | None]:
    """--icmp-type: a number 0..255, or (icmp) a type name of the policy format, which fixes
    the code too: `echo`, `port unreachable`, `ttl-exceeded`, ..."""
    from classifier.policy.fields import ICMP_TYPE_NAMES, icmp_name

    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= 3 and int(stripped) < 256:
        return int(stripped), None
    named = icmp_name(text)
    if named is None:
        raise UsageError(
            f"--icmp-type: {text!r} is neither a type number 0..255 nor an ICMP type name "
            f"({', '.join(sorted(ICMP_TYPE_NAMES))})"
        )
    if protocol != PROTO_ICMP:
        raise UsageError(f"--icmp-type: {text!r}: type names are IPv4 ICMP's; give a number")
    return named


def resolve_address(
    text: str, option: str, policy: Policy, version: int | None = None
) -> IPAddress:
    """--src/--dst: an IP address, or an instance id of the policy (its first address of
    `version` when given, else its first address)."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        pass
    instance = policy.instances.get(text)
    if instance is None:
        raise UsageError(
            f"{option}: {text!r} is neither an IP address nor an instance id of the policy"
        )
    candidates = [ip for ip in instance.ips if version is None or ip.version == version]
    if not candidates:
        raise UsageError(f"{option}: instance {text!r} has no IPv{version} address")
    return candidates[0]


def resolve_pair(src: str, dst: str, policy: Policy) -> tuple[IPAddress, IPAddress]:
    """Both addresses, of one IP version: an instance id takes the other side's version (both
    ids: IPv4 when both have an IPv4 address, else IPv6)."""

    def literal(text: str) -> IPAddress | None:
        try:
            return ipaddress.ip_address(text.strip())
        except ValueError:
            return None

    a, b = literal(src), literal(dst)
    if a is None and b is None:
        versions = [
            v
            for v in (4, 6)
            if all(
                any(ip.version == v for ip in policy.instances[i].ips)
                for i in (src, dst)
                if i in policy.instances
            )
        ]
        wanted = versions[0] if versions else None
        return resolve_address(src, "--src", policy, wanted), resolve_address(
            dst, "--dst", policy, wanted
        )
    if a is None:
        assert b is not None
        return resolve_address(src, "--src", policy, b.version), b
    if b is None:
        return a, resolve_address(dst, "--dst", policy, a.version)
    return a, b


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from classifier.engine import Engine
    from classifier.packets import Packet

    protocol = parse_protocol(args.proto)
    port_protocol = protocol in PORT_PROTOCOLS
    icmp_protocol = protocol in ICMP_PROTOCOLS
    if args.dport is not None and not port_protocol:
        raise UsageError(f"--dport: applies to tcp, udp and sctp, not to protocol {args.proto}")
    if (args.icmp_type is not None or args.icmp_code is not None) and not icmp_protocol:
        raise UsageError(f"--icmp-type/--icmp-code: apply to icmp and icmpv6, not to {args.proto}")
    if args.icmp_code is not None and args.icmp_type is None:
        raise UsageError("--icmp-code: needs --icmp-type")
    if args.sport is not None and args.dport is None:
        raise UsageError("--sport: needs --dport (only the destination port is matched)")
    icmp_type, icmp_code = None, args.icmp_code
    if args.icmp_type is not None:
        icmp_type, named_code = parse_icmp_type(args.icmp_type, protocol)
        if named_code is not None:
            if args.icmp_code is not None:
                raise UsageError(
                    f"--icmp-code: the type name {args.icmp_type!r} fixes the code already"
                )
            icmp_code = named_code
    policy = load_policy(args.policy, err, args.strict)
    src, dst = resolve_pair(args.src, args.dst, policy)
    if src.version != dst.version:
        raise UsageError(f"--src/--dst: {src} and {dst} are of different IP versions")
    if protocol == PROTO_ICMP and src.version == 6 or protocol == PROTO_ICMPV6 and src.version == 4:
        raise UsageError(f"--proto: {args.proto} does not go with IPv{src.version} addresses")
    for option, text, address in (("--src", args.src, src), ("--dst", args.dst, dst)):
        if text.strip() != str(address) and text in policy.instances:
            print(f"note: {option} {text} is {address}", file=err if args.json else out)

    ports_known = port_protocol and args.dport is not None
    icmp_known = icmp_protocol and icmp_type is not None
    packet = Packet(
        ip_version=src.version,
        src=src,
        dst=dst,
        protocol=protocol,
        sport=(args.sport if args.sport is not None else 40000) if ports_known else None,
        dport=args.dport if ports_known else None,
        icmp_type=icmp_type if icmp_known else None,
        icmp_code=icmp_code if icmp_known else None,
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
    elif icmp_known and icmp_code is None:
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
