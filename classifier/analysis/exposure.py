"""`exposure` (exposure.md sections 3-5): listening or answering services against the rules.

Two questions, both answered on the instance's ingress decision map (`KeySpace.context`):
- `reach`: which remote addresses of a family may open a new connection to (protocol, port)
  on the instance, and by which rules (the map's remote axis at that service);
- `idle_ports`: the ports on which an allow rule is the deciding rule for some remote (the
  service cells it decides), minus the ports where something listens or answered.

Sockets mode reads a `SocketListing` (classifier.analysis.sockets); capture mode finds the
answers in captures (TCP SYN-ACK, UDP replies to a peer that spoke first) with the capture
reader's columns and the engine's address -> instance table, batch by batch in numpy.

Orders the spec leaves open (docs/exposure.md): a service's `addresses`, `remotes` and
`blocked_remotes` are ascending by address; idle `ports` are strings ("22", "1000-2000").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.analysis.keyspace import (
    ADDRESS_END,
    DecisionMap,
    KeySpace,
    Ranges,
    subtract_ranges,
)
from classifier.analysis.sockets import ListeningSocket, SocketListing
from classifier.errors import UsageError
from classifier.policy import Instance, IPAddress, Policy, merge_ranges

PROTOCOLS = {"tcp": 6, "udp": 17}
PROTOCOL_NAMES = {6: "tcp", 17: "udp"}
IMPLICIT_DENY = "implicit-deny"


def address_of(version: int, value: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def address_text(address: IPAddress) -> str:
    """exposure.md section 5: dotted quad, RFC 5952, an IPv4-mapped IPv6 address as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def range_text(version: int, lo: int, hi: int) -> str:
    """`a.b.c.d/n` when the range is exactly one prefix, else `first-last`."""
    first, last = address_of(version, lo), address_of(version, hi)
    networks = list(ipaddress.summarize_address_range(first, last))
    if len(networks) == 1:
        return str(networks[0])
    return f"{first}-{last}"


def ports_text(ranges: Ranges) -> tuple[str, ...]:
    return tuple(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


@dataclass(frozen=True)
class Reach:
    """Who may open a new connection to one (family, protocol, port) of an instance."""

    family: int
    allowed: Ranges  # remote addresses X's ingress allows, maximal ranges, ascending
    allow_rules: tuple[str, ...]  # instance rule order
    deny_rules: tuple[str, ...]  # instance rule order, then "implicit-deny"

    @property
    def verdict(self) -> str:
        if not self.allowed:
            return "blocked"
        if self.allowed == ((0, ADDRESS_END[self.family] - 1),):
            return "open to any"
        return "open to some"

    def allowed_from(self) -> tuple[str, ...]:
        return tuple(range_text(self.family, lo, hi) for lo, hi in self.allowed)


def ingress_map(space: KeySpace, instance: Instance, family: int) -> DecisionMap:
    return space.context(instance.security_groups, "ingress", family)


def reach(space: KeySpace, instance: Instance, family: int, protocol: int, port: int) -> Reach:
    decision = ingress_map(space, instance, family)
    pieces = decision.remote_decisions(protocol, port)
    allowed = [(lo, hi) for lo, hi, k in pieces if k >= 0 and decision.rules[k].action == "allow"]
    deciding = sorted({k for _, _, k in pieces if k >= 0})
    allow = tuple(decision.rules[k].id for k in deciding if decision.rules[k].action == "allow")
    deny = [decision.rules[k].id for k in deciding if decision.rules[k].action == "deny"]
    if any(k < 0 for _, _, k in pieces):
        deny.append(IMPLICIT_DENY)
    return Reach(family, tuple(merge_ranges(allowed)), allow, tuple(deny))


@dataclass(frozen=True)
class IdlePorts:
    """Ports an allow rule opens (it decides there) where nothing listens / answered."""

    rule: str
    group: str
    protocol: str
    family: int
    ports: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "group": self.group,
            "protocol": self.protocol,
            "family": self.family,
            "ports": list(self.ports),
        }


def idle_ports(
    space: KeySpace, instance: Instance, used: dict[tuple[int, int], set[int]]
) -> tuple[IdlePorts, ...]:
    """exposure.md section 3, "allowed, nothing listening": `used[(family, protocol)]` is L."""
    found: list[IdlePorts] = []
    for family in (4, 6):
        decision = ingress_map(space, instance, family)
        for k, rule in enumerate(decision.rules):
            if rule.action != "allow":
                continue
            for protocol in (6, 17):
                if rule.protocol not in (None, protocol):
                    continue
                opened = subtract_ranges(
                    decision.services_decided(k, protocol), [(0, 0), (65536, 65536)]
                )
                taken = merge_ranges([(q, q) for q in used.get((family, protocol), set())])
                idle = subtract_ranges(opened, taken)
                if idle:
                    found.append(
                        IdlePorts(
                            rule.id,
                            rule.group_id,
                            PROTOCOL_NAMES[protocol],
                            family,
                            ports_text(idle),
                        )
                    )
    return tuple(found)


# --- sockets mode ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SocketEntry:
    """One listening socket and one family it takes (exposure.md section 3)."""

    socket: ListeningSocket
    family: int
    verdict: str
    allowed_from: tuple[str, ...]
    allow_rules: tuple[str, ...]
    deny_rules: tuple[str, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        s = self.socket
        return {
            "line": s.line,
            "protocol": s.protocol,
            "address": str(s.address),
            "port": s.port,
            "family": self.family,
            "dual_stack": s.dual_stack,
            "interface": s.interface,
            "process": s.process,
            "verdict": self.verdict,
            "allowed_from": list(self.allowed_from),
            "allow_rules": list(self.allow_rules),
            "deny_rules": list(self.deny_rules),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class SocketsExposure:
    instance: str
    format: str
    entries: tuple[SocketEntry, ...]
    idle: tuple[IdlePorts, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "sockets",
            "instance": self.instance,
            "format": self.format,
            "sockets": [entry.to_json() for entry in self.entries],
            "idle": [idle.to_json() for idle in self.idle],
        }


def find_instance(policy: Policy, instance_id: str) -> Instance:
    instance = policy.instances.get(instance_id)
    if instance is None:
        known = ", ".join(list(policy.instances)[:10]) or "none"
        raise UsageError(
            f"--instance {instance_id!r}: no such instance in {policy.source or 'the policy'} "
            f"(instances: {known}{', ...' if len(policy.instances) > 10 else ''})"
        )
    return instance


def sockets_exposure(
    policy: Policy, instance_id: str, listing: SocketListing, space: KeySpace | None = None
) -> SocketsExposure:
    space = space if space is not None else KeySpace(policy)
    instance = find_instance(policy, instance_id)
    families_with_ips = {ip.version for ip in instance.ips}
    entries: list[SocketEntry] = []
    used: dict[tuple[int, int], set[int]] = {}
    for socket in listing.sockets:
        protocol = PROTOCOLS[socket.protocol]
        for family in socket.families:
            if socket.loopback:
                entries.append(SocketEntry(socket, family, "local only", (), (), (), ()))
                continue
            used.setdefault((family, protocol), set()).add(socket.port)
            notes: list[str] = []
            if socket.wildcard:
                if family not in families_with_ips:
                    notes.append(f"no IPv{family} address on the instance")
            elif socket.address not in instance.ips:
                notes.append("not an instance address")
            found = reach(space, instance, family, protocol, socket.port)
            entries.append(
                SocketEntry(
                    socket,
                    family,
                    found.verdict,
                    found.allowed_from(),
                    found.allow_rules,
                    found.deny_rules,
                    tuple(notes),
                )
            )
    return SocketsExposure(
        instance.id, listing.format, tuple(entries), idle_ports(space, instance, used)
    )


# --- capture mode ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """An instance's service seen answering (exposure.md section 4)."""

    protocol: str
    family: int
    port: int
    addresses: tuple[IPAddress, ...]
    answers: int
    remotes: tuple[IPAddress, ...]
    blocked_remotes: tuple[IPAddress, ...]
    allow_rules: tuple[str, ...]
    deny_rules: tuple[str, ...]

    @property
    def verdict(self) -> str:
        return "answering but blocked" if self.blocked_remotes else "answering and allowed"

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "family": self.family,
            "port": self.port,
            "addresses": [address_text(a) for a in self.addresses],
            "answers": self.answers,
            "verdict": self.verdict,
            "remotes": [address_text(a) for a in self.remotes],
            "blocked_remotes": [address_text(a) for a in self.blocked_remotes],
            "allow_rules": list(self.allow_rules),
            "deny_rules": list(self.deny_rules),
        }


@dataclass(frozen=True)
class InstanceServices:
    instance: str
    services: tuple[Service, ...]
    idle: tuple[IdlePorts, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "services": [service.to_json() for service in self.services],
            "idle": [idle.to_json() for idle in self.idle],
        }


@dataclass(frozen=True)
class CaptureExposure:
    packets: int
    instances: tuple[InstanceServices, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "capture",
            "packets": self.packets,
            "instances": [instance.to_json() for instance in self.instances],
        }


# (instance index, protocol, family, port) -> (own address, remote) -> answers
Answers = dict[tuple[int, int, int, int], dict[tuple[bytes, bytes], int]]


class AnswerFinder:
    """The answer records of a capture stream, batch by batch (exposure.md section 4).

    A UDP record is an answer when the first counting UDP record between its two endpoints
    went the other way; the first sender of every endpoint pair is remembered across batches
    and files (one continuous capture).
    """

    def __init__(self, owner_of: Callable[[np.ndarray, np.ndarray], np.ndarray]):
        self.owner_of = owner_of
        self.first_sender_low: dict[bytes, bool] = {}  # pair -> its first sender is the low end
        self.answers: Answers = {}
        self.packets = 0

    def add(self, batch: Any) -> None:
        from classifier.codes import L4_PORTS, L4_TCP_FLAGS, STATUS_OK, TCP_ACK, TCP_RST, TCP_SYN

        self.packets += len(batch)
        counting = (
            (batch.status == STATUS_OK)
            & ((batch.l4 & L4_PORTS) != 0)
            & ((batch.protocol == 6) | (batch.protocol == 17))
        )
        rows = np.flatnonzero(counting)
        if not rows.size:
            return
        version = batch.ip_version[rows]
        protocol = batch.protocol[rows]
        src, dst = batch.src[rows], batch.dst[rows]
        sport, dport = batch.sport[rows], batch.dport[rows]
        owner = self.owner_of(src, version)
        flags = batch.tcp_flags[rows]
        answer = (
            (protocol == 6)
            & ((batch.l4[rows] & L4_TCP_FLAGS) != 0)
            & ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == (TCP_SYN | TCP_ACK))
        )
        udp = np.flatnonzero(protocol == 17)
        if udp.size:
            answer[udp] = self._udp_answers(
                version[udp], src[udp], dst[udp], sport[udp], dport[udp]
            )
        hits = np.flatnonzero(answer & (owner >= 0))
        for i in hits.tolist():
            key = (int(owner[i]), int(protocol[i]), int(version[i]), int(sport[i]))
            pair = (src[i].tobytes(), dst[i].tobytes())
            per = self.answers.setdefault(key, {})
            per[pair] = per.get(pair, 0) + 1

    def _udp_answers(
        self,
        version: np.ndarray,
        src: np.ndarray,
        dst: np.ndarray,
        sport: np.ndarray,
        dport: np.ndarray,
    ) -> np.ndarray:
        n = len(version)
        # an endpoint as 19 bytes: version, address, port (big-endian)
        a = np.zeros((n, 19), np.uint8)
        b = np.zeros((n, 19), np.uint8)
        a[:, 0] = b[:, 0] = version
        a[:, 1:17], b[:, 1:17] = src, dst
        a[:, 17], a[:, 18] = sport >> 8, sport & 0xFF
        b[:, 17], b[:, 18] = dport >> 8, dport & 0xFF
        differ = a != b
        first_diff = differ.argmax(axis=1)
        same = ~differ.any(axis=1)
        rows = np.arange(n)
        src_low = a[rows, first_diff] < b[rows, first_diff]  # the source is the low endpoint
        low = np.where(src_low[:, None], a, b)
        high = np.where(src_low[:, None], b, a)
        pairs = np.ascontiguousarray(np.concatenate((low, high), axis=1))
        keys = pairs.view(np.dtype((np.void, 38))).ravel()
        unique, first_index, inverse = np.unique(keys, return_index=True, return_inverse=True)
        first_low = np.empty(len(unique), bool)
        for u, (key, i) in enumerate(zip(unique.tolist(), first_index.tolist(), strict=True)):
            known = self.first_sender_low.get(key)
            if known is None:
                known = bool(src_low[i])
                if not same[i]:
                    self.first_sender_low[key] = known
            first_low[u] = known
        # an answer: the first record of the pair went from the other endpoint
        return np.asarray((first_low[inverse.ravel()] != src_low) & ~same)


def _address_bytes(raw: bytes, version: int) -> IPAddress:
    return ipaddress.IPv4Address(raw[12:]) if version == 4 else ipaddress.IPv6Address(raw)


def capture_exposure(
    policy: Policy,
    batches: Iterable[Any],
    owner_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
    space: KeySpace | None = None,
) -> CaptureExposure:
    """exposure.md section 4 over a stream of `PacketBatch`es (one continuous capture);
    `owner_of(addresses, versions)` is the engine's `instance_of`."""
    space = space if space is not None else KeySpace(policy)
    finder = AnswerFinder(owner_of)
    for batch in batches:
        finder.add(batch)
    instances = list(policy.instances.values())
    per_instance: dict[int, list[Service]] = {}
    for (index, protocol, family, port), pairs in sorted(
        finder.answers.items(),
        key=lambda item: (item[0][0], PROTOCOL_NAMES[item[0][1]], item[0][2], item[0][3]),
    ):
        instance = instances[index]
        own = sorted({_address_bytes(a, family) for a, _ in pairs}, key=int)
        remotes = sorted({_address_bytes(r, family) for _, r in pairs}, key=int)
        decision = ingress_map(space, instance, family)
        blocked: list[IPAddress] = []
        allow_k: set[int] = set()
        deny_k: set[int] = set()
        implicit = False
        for remote in remotes:
            k = decision.decide(int(remote), protocol, port)
            if k >= 0 and decision.rules[k].action == "allow":
                allow_k.add(k)
                continue
            blocked.append(remote)
            if k < 0:
                implicit = True
            else:
                deny_k.add(k)
        deny = [decision.rules[k].id for k in sorted(deny_k)] + (
            [IMPLICIT_DENY] if implicit else []
        )
        per_instance.setdefault(index, []).append(
            Service(
                PROTOCOL_NAMES[protocol],
                family,
                port,
                tuple(own),
                sum(pairs.values()),
                tuple(remotes),
                tuple(blocked),
                tuple(decision.rules[k].id for k in sorted(allow_k)),
                tuple(deny),
            )
        )
    result = []
    for index, instance in enumerate(instances):
        services = per_instance.get(index, [])
        used: dict[tuple[int, int], set[int]] = {}
        for service in services:
            used.setdefault((service.family, PROTOCOLS[service.protocol]), set()).add(service.port)
        result.append(
            InstanceServices(instance.id, tuple(services), idle_ports(space, instance, used))
        )
    return CaptureExposure(finder.packets, tuple(result))
