"""`lint` at scale: synthetic policies of R rules on I instances, timed on one core.

Target (issue 9): a policy of 2,000 rules on 200 instances linted in under 10 s (stretch 1 s).

Three shapes, each generated from a fixed seed:
- `fleet`: G groups of about R/G rules; each instance carries a random sequence of 1-4 of
  them (nearly every instance its own sequence: the most contexts);
- `shared`: one base group holding half the rules on every instance, behind a small group of
  the instance's own (many contexts, each with a thousand candidates);
- `flat`: one group of R rules on every instance (one sequence: 4 contexts of R/4 candidates).

Rules mix what real policies hold: tcp/udp ports (single, lists, ranges; sensitive ones
often), ICMP types, all-protocol rules; remotes that are the whole space, random prefixes
(/8 to /32), remote security groups (their members are the instances' IPs), address groups;
a fifth are deny rules; priorities from a handful of values. IPv6 for a fifth of the rules.

    python benchmarks/lint_scale.py [--rules 2000] [--instances 200] [--repeat 3]
    python benchmarks/lint_scale.py --write fleet.json   # the fleet policy as a policy file,
    sgclassify lint fleet.json                           # to time the command as a whole
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.analysis.keyspace import KeySpace  # noqa: E402
from classifier.analysis.lint import lint  # noqa: E402
from classifier.policy import (  # noqa: E402
    AddressGroup,
    AddressRange,
    Instance,
    Policy,
    Rule,
    SecurityGroup,
)

PORTS = (22, 80, 443, 3306, 3389, 5432, 6379, 8080, 8443, 9200, 11211, 27017, 53, 123, 161)


def _ports(rng: random.Random) -> tuple[tuple[int, int], ...] | None:
    kind = rng.random()
    if kind < 0.15:
        return None
    if kind < 0.6:
        port = rng.choice(PORTS)
        return ((port, port),)
    if kind < 0.8:
        chosen = sorted(set(rng.sample(PORTS, rng.randint(2, 4))))
        return tuple((p, p) for p in chosen)
    lo = rng.randint(1, 60000)
    return ((lo, min(65535, lo + rng.choice((9, 99, 999, 4999)))),)


def _prefix(rng: random.Random, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if version == 4:
        length = rng.choice((8, 16, 16, 24, 24, 24, 28, 32))
        base = rng.choice((0x0A000000, 0xC0A80000, 0xCB007100, rng.getrandbits(32)))
        value = (base | rng.getrandbits(32 - 8)) & ~((1 << (32 - length)) - 1) & 0xFFFFFFFF
        return ipaddress.IPv4Network((value, length))
    length = rng.choice((32, 48, 64, 64, 128))
    value = (0x20010DB8 << 96 | rng.getrandbits(96)) & ~((1 << (128 - length)) - 1)
    return ipaddress.IPv6Network((value, length))


def _rule(
    rng: random.Random, gid: str, position: int, groups: list[str], ags: dict[str, AddressGroup]
) -> Rule:
    version = 6 if rng.random() < 0.2 else 4
    protocol = rng.choice((6, 6, 6, 6, 17, 17, None, 1 if version == 4 else 58))
    ports = icmp_type = None
    if protocol in (6, 17):
        ports = _ports(rng)
    elif protocol in (1, 58) and rng.random() < 0.6:
        icmp_type = rng.choice((0, 3, 8, 11) if version == 4 else (128, 129, 1, 135))
    remote_kind = rng.random()
    prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    remote_group = remote_ag = None
    if remote_kind < 0.3:
        pass  # the whole address space
    elif remote_kind < 0.7:
        prefixes = tuple({_prefix(rng, version) for _ in range(rng.choice((1, 1, 1, 2, 3)))})
    elif remote_kind < 0.9:
        remote_group = rng.choice(groups)
    else:
        same = [ag for ag in ags.values() if ag.ip_version == version]
        remote_ag = rng.choice(same).id if same else None
    return Rule(
        id=f"{gid}/{position}",
        group_id=gid,
        position=position,
        direction="ingress" if rng.random() < 0.7 else "egress",
        priority=rng.choice((1, 1, 10, 50, 100)),
        action="deny" if rng.random() < 0.2 else "allow",
        ip_version=version,
        protocol=protocol,
        ports=ports,
        icmp_type=icmp_type,
        remote_prefixes=prefixes,
        remote_group_id=remote_group,
        remote_address_group_id=remote_ag,
        enabled=rng.random() > 0.02,
    )


def synthetic_policy(shape: str, rules: int, instances: int, seed: int = 1) -> Policy:
    rng = random.Random(seed)
    ags: dict[str, AddressGroup] = {}
    for n in range(10):
        version = 4 if n < 7 else 6
        entries = []
        for _ in range(rng.randint(1, 5)):
            network = _prefix(rng, version)
            entries.append(AddressRange(network.network_address, network.broadcast_address))
        ags[f"ag{n}"] = AddressGroup(f"ag{n}", version, tuple(entries))
    if shape == "fleet":
        sizes = {f"sg{n}": rules // 60 + (1 if n < rules % 60 else 0) for n in range(60)}
    elif shape == "shared":
        own = max(1, instances // 2)
        sizes = {"base": rules // 2}
        sizes.update(
            {
                f"own{n}": (rules - rules // 2) // own
                + (1 if n < (rules - rules // 2) % own else 0)
                for n in range(own)
            }
        )
    elif shape == "flat":
        sizes = {"all": rules}
    else:
        raise SystemExit(f"unknown shape {shape!r}")
    names = list(sizes)
    groups = {
        gid: SecurityGroup(gid, tuple(_rule(rng, gid, p, names, ags) for p in range(1, size + 1)))
        for gid, size in sizes.items()
    }
    fleet = {}
    for n in range(instances):
        k = n % 50  # per /24: 25 consecutive addresses, then 25 scattered ones (all unique)
        offset = 10 + k if k < 25 else 60 + 3 * (k - 25)
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
            ipaddress.IPv4Address(0x0A000000 + (n // 50) * 256 + offset)
        ]
        if n % 4 == 0:
            ips.append(ipaddress.IPv6Address((0x20010DB8 << 96) + 0x10000 + n))
        if shape == "fleet":
            sequence = tuple(rng.sample(names, rng.randint(1, 4)))
        elif shape == "shared":
            sequence = (f"own{n % (len(names) - 1)}", "base")
        else:
            sequence = ("all",)
        fleet[f"vm{n}"] = Instance(f"vm{n}", tuple(dict.fromkeys(ips)), sequence)
    return Policy(
        groups=groups, address_groups=ags, instances=fleet, source=f"{shape}-{rules}x{instances}"
    )


def policy_document(policy: Policy) -> dict[str, object]:
    """The policy in the loaders' format (the API's field names), for `sgclassify lint`."""

    def rule(r: Rule) -> dict[str, object]:
        raw: dict[str, object] = {
            "id": r.id,
            "direction": r.direction,
            "priority": r.priority,
            "action": r.action,
            "ethertype": f"IPv{r.ip_version}",
            "enabled": r.enabled,
        }
        if r.protocol is not None:
            raw["protocol"] = r.protocol
        if r.ports is not None:
            raw["multiport"] = r.ports_text
        if r.icmp_type is not None:
            raw["icmp_type"] = r.icmp_type
        if r.remote_prefixes:
            raw["remote_ip_prefix"] = ", ".join(map(str, r.remote_prefixes))
        if r.remote_group_id is not None:
            raw["remote_group_id"] = r.remote_group_id
        if r.remote_address_group_id is not None:
            raw["remote_address_group_id"] = r.remote_address_group_id
        return raw

    return {
        "address_groups": [
            {
                "id": ag.id,
                "ip_version": ag.ip_version,
                "ip_set": [f"{e.first}-{e.last}" for e in ag.entries],
            }
            for ag in policy.address_groups.values()
        ],
        "security_groups": [
            {"id": g.id, "rules": [rule(r) for r in g.rules]} for g in policy.groups.values()
        ],
        "instances": [
            {
                "id": i.id,
                "ips": [str(ip) for ip in i.ips],
                "security_groups": list(i.security_groups),
            }
            for i in policy.instances.values()
        ],
    }


def measure(policy: Policy, repeat: int) -> tuple[float, float, int, int, int]:
    times = []
    findings = contexts = candidates = 0
    for _ in range(repeat):
        start = time.perf_counter()
        space = KeySpace(policy)
        report = lint(policy, space)
        times.append(time.perf_counter() - start)
        findings = len(report.findings)
        contexts = space.maps_built
        candidates = max((len(m.candidates) for m in space._maps.values()), default=0)
    return statistics.median(times), min(times), findings, contexts, candidates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="fleet,shared,flat")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--write", metavar="FILE.json", help="write the first shape's policy and stop"
    )
    args = parser.parse_args()
    if args.write:
        policy = synthetic_policy(args.shapes.split(",")[0], args.rules, args.instances, args.seed)
        Path(args.write).write_text(json.dumps(policy_document(policy)))
        return
    print(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, one "
        "core"
    )
    print(
        "| shape | rules | instances | contexts built | most candidates | findings | median s | "
        "best s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        policy = synthetic_policy(shape, args.rules, args.instances, args.seed)
        median, best, findings, contexts, candidates = measure(policy, args.repeat)
        print(
            f"| {shape} | {policy.rule_count} | {len(policy.instances)} | {contexts} | "
            f"{candidates} | "
            f"{findings} | {median:.2f} | {best:.2f} |"
        )


if __name__ == "__main__":
    main()
