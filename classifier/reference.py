"""The oracle: the semantics contract (spec sections 2, 3, 4 and 6), line by line, in plain Python.

Every fast path of the project (the compiled matcher, connection tracking, the pcap decoder
through its verdicts) is tested against this module on random policies and packets, the way
Open vSwitch tests its classifier against a linear one. It is therefore written to be *obviously*
right, never fast: candidates are rebuilt and sorted for every packet, group membership is
recomputed from the instances, connection keys are tuples of `ipaddress` objects in a dict.

Layout follows the spec:
- section 2, one side: `candidates`, `rule_matches`, `evaluate_side`;
- section 3, both sides: `evaluate` (and the statuses not-ip / malformed / unmanaged);
- sections 4 and 6, state: `StatefulReference`, fed packets in capture order.

Decisions where the spec is silent are written down in docs/semantics-notes.md; the code
points at them with "(notes: ...)".
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from classifier.codes import (
    FRAGMENT_FIRST,
    FRAGMENT_LATER,
    FRAGMENT_WINDOW_NS,
    ICMP_ERROR_TYPES,
    ICMP_PROTOCOL_OF_VERSION,
    ICMP_QUERY_TYPES,
    ICMP_TIMEOUT_NS,
    OTHER_ONE_WAY_TIMEOUT_NS,
    OTHER_TIMEOUT_NS,
    PORT_PROTOCOLS,
    STATUS_L4_TRUNCATED,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    STATUS_OK,
    TCP_ACK,
    TCP_CLOSING_TIMEOUT_NS,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    TCP_TIMEOUT_NS,
)
from classifier.packets import Packet, QuotedHeader
from classifier.policy import Direction, Instance, IPAddress, Policy, Rule

VerdictName = Literal["allow", "deny", "unmanaged", "not-ip", "malformed"]
Reason = Literal["", "rule", "implicit-deny", "established", "related"]

# --- section 2: one side --------------------------------------------------------------------


@dataclass(frozen=True)
class SideVerdict:
    instance_id: str
    direction: Direction
    verdict: Literal["allow", "deny"]
    rule: Rule | None  # the matched rule; None for implicit deny
    reason: Literal["rule", "implicit-deny"]


def candidates(
    policy: Policy, instance: Instance, direction: Direction, ip_version: int
) -> list[Rule]:
    """Step 1 and 2: the enabled rules of the instance's groups for this direction and
    ethertype, ordered by (group position in the sequence, priority, deny first, position)."""
    found: list[tuple[tuple[int, int, int, int], Rule]] = []
    for group_position, group_id in enumerate(instance.security_groups):
        group = policy.groups[group_id]
        for rule in group.rules:
            if not rule.enabled:
                continue
            if rule.direction != direction or rule.ip_version != ip_version:
                continue
            deny_first = 0 if rule.action == "deny" else 1
            found.append(((group_position, rule.priority, deny_first, rule.position), rule))
    found.sort(key=lambda item: item[0])
    return [rule for _, rule in found]


def rule_matches(policy: Policy, rule: Rule, packet: Packet, remote: IPAddress) -> bool:
    """The three clauses of section 2: protocol, ports / ICMP type and code, remote."""
    # protocol
    if rule.protocol is not None and rule.protocol != packet.protocol:
        return False
    # ports: only the destination port; unknown ports never match a restriction
    if rule.ports is not None:
        if packet.dport is None:
            return False
        if not any(lo <= packet.dport <= hi for lo, hi in rule.ports):
            return False
    # ICMP: type, then code if the rule has one; an unknown type never matches a restriction
    if rule.icmp_type is not None:
        if packet.icmp_type is None or packet.icmp_type != rule.icmp_type:
            return False
        if rule.icmp_code is not None and packet.icmp_code != rule.icmp_code:
            return False
    # remote
    if rule.remote_group_id is not None:
        return remote in policy.group_members(rule.remote_group_id, remote.version)
    if rule.remote_address_group_id is not None:
        return remote in policy.address_groups[rule.remote_address_group_id]
    if rule.remote_prefixes:
        return any(
            prefix.version == remote.version and remote in prefix for prefix in rule.remote_prefixes
        )
    return True


def evaluate_side(
    policy: Policy, instance: Instance, direction: Direction, packet: Packet
) -> SideVerdict:
    """Steps 1-4 of section 2 for one side: the first matching candidate decides."""
    assert packet.src is not None and packet.dst is not None
    remote = packet.src if direction == "ingress" else packet.dst
    for rule in candidates(policy, instance, direction, packet.ip_version):
        if rule_matches(policy, rule, packet, remote):
            return SideVerdict(instance.id, direction, rule.action, rule, "rule")
    return SideVerdict(instance.id, direction, "deny", None, "implicit-deny")


# --- section 3: both sides ------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What happened to one packet (spec section 6's per-packet columns, as objects)."""

    verdict: VerdictName
    reason: Reason = ""
    instance_id: str | None = None  # the reported side
    direction: Direction | None = None
    rule: Rule | None = None  # the matched rule of the reported side (None: implicit deny, state)
    sides: tuple[SideVerdict, ...] = ()  # evaluated sides, egress first; () when not evaluated
    created: bool = False  # this packet created a connection (stateful mode)
    midstream: bool = False  # ... a TCP connection whose first packet was not a bare SYN

    @property
    def group_id(self) -> str | None:
        return self.rule.group_id if self.rule is not None else None

    @property
    def rule_id(self) -> str | None:
        return self.rule.id if self.rule is not None else None


def evaluate(policy: Policy, packet: Packet) -> Verdict:
    """Section 3, statelessly: every evaluated side must allow; report per the spec's order."""
    if packet.status == STATUS_NOT_IP:
        return Verdict("not-ip")
    if packet.status == STATUS_MALFORMED:
        return Verdict("malformed")
    assert packet.status in (STATUS_OK, STATUS_L4_TRUNCATED)
    assert packet.src is not None and packet.dst is not None
    sender = policy.instance_of(packet.src)
    receiver = policy.instance_of(packet.dst)
    if sender is None and receiver is None:
        return Verdict("unmanaged")
    egress = evaluate_side(policy, sender, "egress", packet) if sender is not None else None
    ingress = evaluate_side(policy, receiver, "ingress", packet) if receiver is not None else None
    sides = tuple(side for side in (egress, ingress) if side is not None)
    if egress is not None and egress.verdict == "deny":
        reported = egress
    elif ingress is not None:
        reported = ingress
    else:
        assert egress is not None
        reported = egress
    allowed = all(side.verdict == "allow" for side in sides)
    return Verdict(
        verdict="allow" if allowed else "deny",
        reason=reported.reason,
        instance_id=reported.instance_id,
        direction=reported.direction,
        rule=reported.rule,
        sides=sides,
    )


def state_side(policy: Policy, packet: Packet) -> tuple[str, Direction]:
    """Section 6: the side reported for a packet allowed by state (the side a new packet
    would report when allowed): the receiver's ingress if any, else the sender's egress."""
    assert packet.src is not None and packet.dst is not None
    receiver = policy.instance_of(packet.dst)
    if receiver is not None:
        return receiver.id, "ingress"
    sender = policy.instance_of(packet.src)
    assert sender is not None
    return sender.id, "egress"


# --- section 4: connection keys -------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionKey:
    """Unordered endpoints: (address, port) pairs, port None for port-less keys and ICMP."""

    ip_version: int
    protocol: int
    endpoints: frozenset[tuple[IPAddress, int | None]]
    icmp_id: int | None = None  # ICMP query keys only


def is_icmp(ip_version: int, protocol: int) -> bool:
    """ICMP for IPv4, ICMPv6 for IPv6 (notes: ICMP carried by the other IP version is a plain
    protocol with a port-less key)."""
    return ICMP_PROTOCOL_OF_VERSION.get(ip_version) == protocol


def is_icmp_error(packet: Packet) -> bool:
    return (
        is_icmp(packet.ip_version, packet.protocol)
        and packet.icmp_type is not None
        and packet.icmp_type in ICMP_ERROR_TYPES[packet.ip_version]
    )


def _key(
    ip_version: int,
    protocol: int,
    src: IPAddress,
    dst: IPAddress,
    sport: int | None,
    dport: int | None,
    icmp_type: int | None,
    icmp_id: int | None,
) -> ConnectionKey | None:
    if is_icmp(ip_version, protocol):
        if (
            icmp_type is not None
            and icmp_type in ICMP_QUERY_TYPES[ip_version]
            and icmp_id is not None
        ):
            return ConnectionKey(
                ip_version, protocol, frozenset({(src, None), (dst, None)}), icmp_id
            )
        return None  # other ICMP, or a query whose identifier is cut off: no key
    if protocol in PORT_PROTOCOLS and sport is not None and dport is not None:
        return ConnectionKey(ip_version, protocol, frozenset({(src, sport), (dst, dport)}))
    return ConnectionKey(ip_version, protocol, frozenset({(src, None), (dst, None)}))


def connection_key(packet: Packet) -> ConnectionKey | None:
    """The key of section 4, or None for ICMP messages that have none."""
    assert packet.src is not None and packet.dst is not None
    return _key(
        packet.ip_version,
        packet.protocol,
        packet.src,
        packet.dst,
        packet.sport,
        packet.dport,
        packet.icmp_type,
        packet.icmp_id,
    )


def quoted_key(ip_version: int, quoted: QuotedHeader) -> ConnectionKey | None:
    """The key of the connection an ICMP error quotes."""
    return _key(
        ip_version,
        quoted.protocol,
        quoted.src,
        quoted.dst,
        quoted.sport,
        quoted.dport,
        quoted.icmp_type,
        quoted.icmp_id,
    )


def source_endpoint(packet: Packet, key: ConnectionKey) -> tuple[IPAddress, int | None]:
    """The packet's own endpoint in the form its key uses (port only for keys with ports)."""
    assert packet.src is not None
    has_ports = any(port is not None for _, port in key.endpoints)
    return (packet.src, packet.sport if has_ports else None)


def is_bare_syn(flags: int | None) -> bool:
    """SYN without ACK, FIN or RST (notes: other bits such as ECE/CWR do not matter)."""
    return flags is not None and flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_SYN


# --- section 4: state -----------------------------------------------------------------------


@dataclass
class Connection:
    key: ConnectionKey
    initiator: tuple[IPAddress, int | None]  # the source endpoint of the creating packet
    last_ns: int  # the last allowed packet
    rule: Rule | None  # the matched rule of the creating packet's reported side
    number: int = 0  # creation order: the connections created before this one
    midstream: bool = False
    fin_or_rst: bool = False
    both_directions: bool = False
    # its record (flows contract, section 3): the creating packet, its file and verdict, and
    # the counted packets (the creating one and those allowed as established on it)
    creator: Packet | None = None
    file: str = ""
    verdict: Verdict | None = None
    last_recorded_ns: int = 0  # the largest recorded timestamp among the counted packets
    initiator_packets: int = 0
    initiator_bytes: int = 0
    responder_packets: int = 0
    responder_bytes: int = 0

    def count(self, packet: Packet) -> None:
        """A counted packet: on the initiator's side when its source endpoint is the
        creating packet's."""
        if source_endpoint(packet, self.key) == self.initiator:
            self.initiator_packets += 1
            self.initiator_bytes += packet.wire_len
        else:
            self.responder_packets += 1
            self.responder_bytes += packet.wire_len
        self.last_recorded_ns = max(self.last_recorded_ns, packet.ts_ns)

    def record(self, end_ns: int) -> dict[str, Any]:
        """The connection's row of `classify --flows` (integers, None where empty)."""
        packet, verdict = self.creator, self.verdict
        assert packet is not None and verdict is not None
        has_ports = any(port is not None for _, port in self.key.endpoints)
        return {
            "file": self.file,
            "index": packet.index,
            "first_ns": packet.ts_ns,
            "last_ns": self.last_recorded_ns,
            "ip_version": self.key.ip_version,
            "protocol": self.key.protocol,
            "initiator": str(packet.src),
            "initiator_port": packet.sport if has_ports else None,
            "responder": str(packet.dst),
            "responder_port": packet.dport if has_ports else None,
            "icmp_id": self.key.icmp_id,
            "initiator_packets": self.initiator_packets,
            "initiator_bytes": self.initiator_bytes,
            "responder_packets": self.responder_packets,
            "responder_bytes": self.responder_bytes,
            "instance": verdict.instance_id or "",
            "direction": verdict.direction or "",
            "group": verdict.group_id or "",
            "rule": verdict.rule_id or "",
            "midstream": self.midstream,
            "fin_rst": self.key.protocol == 6 and self.fin_or_rst,
            "end": "expired" if end_ns - self.last_ns > self.timeout_ns() else "open",
        }

    def timeout_ns(self) -> int:
        if self.key.protocol == 6:
            return TCP_CLOSING_TIMEOUT_NS if self.fin_or_rst else TCP_TIMEOUT_NS
        if is_icmp(self.key.ip_version, self.key.protocol):
            return ICMP_TIMEOUT_NS
        return OTHER_TIMEOUT_NS if self.both_directions else OTHER_ONE_WAY_TIMEOUT_NS

    def alive(self, t_ns: int) -> bool:
        return t_ns - self.last_ns <= self.timeout_ns()

    def see(self, packet: Packet, t_ns: int) -> None:
        """An allowed packet of this connection: refresh it and note what it says."""
        self.last_ns = t_ns
        if self.key.protocol == 6 and packet.tcp_flags is not None:
            if packet.tcp_flags & (TCP_FIN | TCP_RST):
                self.fin_or_rst = True
        if source_endpoint(packet, self.key) != self.initiator:
            self.both_directions = True


def join_fragment(packet: Packet, first: Packet) -> Packet:
    """A non-first fragment takes its first fragment's upper-layer protocol (IPv6: the one
    after any extension headers that follow the fragment header) and ports (ICMP: type,
    code, identifier, and an error's quoted header); its TCP flags stay unknown."""
    return dataclasses.replace(
        packet,
        protocol=first.protocol,
        quoted=first.quoted,
        sport=first.sport,
        dport=first.dport,
        icmp_type=first.icmp_type,
        icmp_code=first.icmp_code,
        icmp_id=first.icmp_id,
        tcp_flags=None,
    )


FragmentKey = tuple[int, IPAddress, IPAddress, int | None, int]


class StatefulReference:
    """Section 4 over a packet stream: feed packets in capture order to `process`."""

    def __init__(self, policy: Policy, stateless: bool = False, max_connections: int | None = None):
        """`max_connections`: the N of the robustness contract's section 4 (None: no bound)."""
        self.policy = policy
        self.stateless = stateless
        self.max_connections = max_connections
        self.evicted = 0
        self.file = ""  # the file of the packets given now (the records' `file`)
        self.created: list[Connection] = []  # every connection, in creation order
        self.clock_ns: int | None = None  # the latest timestamp seen: the clock never goes back
        self.connections: dict[ConnectionKey, Connection] = {}
        self.first_fragments: dict[FragmentKey, tuple[int, Packet]] = {}
        self.created_per_rule: Counter[str | None] = Counter()  # rule id -> connections created
        self.connections_created = 0
        self.midstream_created = 0

    def effective_time(self, packet: Packet) -> int:
        """The packet's timestamp, or the latest seen so far if it is earlier (every record
        counts for the clock, whatever its status: notes)."""
        if self.clock_ns is None or packet.ts_ns > self.clock_ns:
            self.clock_ns = packet.ts_ns
        return self.clock_ns

    def join(self, packet: Packet, t_ns: int) -> Packet:
        """Remember first fragments; lend their ports to later ones (at most 30 s later).
        The datagram's protocol in the key is the fragment header's Next Header (IPv6; the
        protocol field for IPv4): the same in every fragment of the datagram."""
        if packet.status not in (STATUS_OK, STATUS_L4_TRUNCATED):
            return packet
        assert packet.src is not None and packet.dst is not None
        fkey = (packet.ip_version, packet.src, packet.dst, packet.frag_next_header, packet.ip_id)
        if packet.fragment == FRAGMENT_FIRST:
            self.first_fragments[fkey] = (t_ns, packet)
        elif packet.fragment == FRAGMENT_LATER:
            seen = self.first_fragments.get(fkey)
            if seen is not None and t_ns - seen[0] <= FRAGMENT_WINDOW_NS:
                return join_fragment(packet, seen[1])
        return packet

    def process(self, packet: Packet) -> Verdict:
        t = self.effective_time(packet)
        if self.stateless:
            return evaluate(self.policy, packet)
        packet = self.join(packet, t)
        judged = evaluate(self.policy, packet)
        if judged.verdict not in ("allow", "deny"):
            return judged  # unmanaged, not-ip, malformed: state is neither used nor created

        if is_icmp_error(packet):
            # Step 2: judged by the quoted header alone; never creates, never refreshes.
            if packet.quoted is not None:
                quoted = quoted_key(packet.ip_version, packet.quoted)
                connection = self.connections.get(quoted) if quoted is not None else None
                if connection is not None and connection.alive(t):
                    return self._state_allowed(packet, "related")
            return judged  # an error has no key of its own: judged by the rules

        key = connection_key(packet)
        if key is None:
            return judged  # ICMP without a key: the rules, every time
        connection = self.connections.get(key)
        if connection is not None and connection.alive(t):
            connection.see(packet, t)
            connection.count(packet)
            return self._state_allowed(packet, "established")
        if judged.verdict != "allow":
            return judged  # a denied packet creates and refreshes nothing
        self.make_room(t)
        midstream = key.protocol == 6 and not is_bare_syn(packet.tcp_flags)
        connection = Connection(
            key,
            source_endpoint(packet, key),
            t,
            judged.rule,
            number=self.connections_created,
            midstream=midstream,
            creator=packet,
            file=self.file,
            verdict=judged,
            last_recorded_ns=packet.ts_ns,
        )
        connection.see(packet, t)
        connection.count(packet)
        self.connections[key] = connection
        self.created.append(connection)
        self.created_per_rule[judged.rule_id] += 1
        self.connections_created += 1
        self.midstream_created += midstream
        return dataclasses.replace(judged, created=True, midstream=midstream)

    def make_room(self, t_ns: int) -> None:
        """Robustness contract, section 4: an allowed packet would create a connection at
        t_ns. Connections that have expired are dropped without being counted; if N
        connections are alive, the alive one whose last packet is the oldest (ties: the one
        created first) is forgotten and counted as evicted."""
        if self.max_connections is None:
            return
        for key in [k for k, c in self.connections.items() if not c.alive(t_ns)]:
            del self.connections[key]
        if len(self.connections) >= self.max_connections:
            oldest = min(self.connections.values(), key=lambda c: (c.last_ns, c.number))
            del self.connections[oldest.key]
            self.evicted += 1

    def _state_allowed(self, packet: Packet, reason: Reason) -> Verdict:
        instance_id, direction = state_side(self.policy, packet)
        return Verdict("allow", reason, instance_id, direction, None, ())

    def run(self, packets: list[Packet]) -> list[Verdict]:
        return [self.process(packet) for packet in packets]

    def flows(self) -> list[dict[str, Any]]:
        """Flows contract, section 3: one record per connection, in the order of the
        creating packets; `end` against the latest timestamp of any record seen."""
        end_ns = self.clock_ns if self.clock_ns is not None else 0
        return [connection.record(end_ns) for connection in self.created]
