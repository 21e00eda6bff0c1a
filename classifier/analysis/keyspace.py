"""Set arithmetic over the key space (analysis.md section 1): exact, by cell decomposition.

Design note
-----------
What. `KeySpace(policy)` knows every rule's match set and, for any *context* (a group
sequence, a direction, an IP version), builds a `DecisionMap`: which candidate rule decides
every point of the key space (remote address x protocol x service) and which candidate would
decide it once the first is deleted. Lint (shadowed, redundant, exposed) and exposure (which
remotes reach a port; on which ports an allow rule decides) are queries on this one structure.

Representation. A rule's match set is a *box* (`Box`): a union of remote ranges x one
protocol or all x a union of service ranges or all services. Services live on one integer
axis 0..65536: a TCP/UDP/SCTP destination port is itself, an ICMP (type, code) of the
family's ICMP is type*256+code, and 65536 is `unknown`; a protocol without services (GRE, ICMP
of the other family, ...) is one point, which we let stand for the whole axis: no rule cuts it
(a rule restricts services of its own protocol only, and only TCP/UDP ports or the family's
ICMP type). The protocol axis is split into one *slice* per protocol that a candidate of the
context names, plus one slice "every other protocol" where only all-protocol candidates
match (it is never empty: protocol 0 is in it, as no rule can name 0).

Within a slice both axes are cut into elementary intervals at every boundary of the slice's
candidates (remote: the ends of prefixes, of address-group entries, of remote-group members,
the members merged into ranges first; services: the ends of port ranges and ICMP type/code
ranges). Intervals that exactly the same candidates contain form one *class* (equal rows of
the interval x candidate membership matrix, compared as packed bits), so a remote group of 50
scattered members is one class, not 100 intervals. Each candidate holds a class wholly or not
at all, hence the cells (remote class x service class) are exact: the deciding rule of a cell
is that of each of its points. Per cell the map keeps `first` (the deciding candidate, -1 =
implicit deny) and `second` (the candidate that decides once `first` is deleted, -1 = implicit
deny), as positions in the context's candidate list.

IPv6 addresses need 128 bits, beyond numpy's integers: per (direction, version) *plane* every
remote boundary of every enabled rule is ranked once (Python ints, sorted), and the contexts
work on ranks (int64); `Plane.cuts[rank]` turns a rank back into an address.

Two rules' match sets meet (covering rules, conflicts) iff their protocols agree (or one is
all), and they share an elementary service interval and an elementary remote interval of the
plane: each enabled rule has one bitset per axis over the plane's intervals (Python ints packed
into 64-bit words), and `Plane.meets(rule)` ANDs its row with every row of the plane once,
cached: a property of the pair, whatever the context.

Why boxes and cells. Every match set is a product of per-axis sets, so cutting each axis at
the boundaries of the context's own candidates is exact and stays small: a context has tens to
hundreds of candidates, not the policy's thousands. BDDs (`dd`) would need 128 + 8 + 17 bit
variables and a new dependency to answer the same product questions; the compiled core's
equivalence classes (`classifier.compiler`) are built over all rules of a table for lookup and
keep no second rule. The cells give `first` and `second` for every point at once, which is
what shadowed, redundant (with its fallback), exposed and exposure all read.

Cost. A slice with n candidates, E_R / E_S elementary intervals (each at most 2 x the number
of ranges + 1) and C_R <= E_R, C_S <= E_S classes: the classes cost O((E_R + E_S) * n) bytes
(a difference matrix, a cumulative sum, a sort of packed rows); the cells are C_R x C_S.
`first` and `second` come from the cheapest of (`_first_two`): a cumulative count along the
C_R x C_S x n boolean cube when it is small (SMALL_CUBE), one argmax pass over the cube in
blocks of at most CUBE_BLOCK elements, or painting the candidates' boxes in evaluation order,
O(n) numpy calls plus the sum of the box sizes, stopping once every cell has a second rule.
The worst case is the cube, C_R x C_S x n (a context whose every candidate cuts both axes
anew); real policies cut far less (remote groups, shared prefixes and ports collapse into a
few classes). Memory: two int32 per cell, the membership matrices, one cube block; per plane
the bitsets, n_plane x (E_plane + E_services) / 8 bytes, and one cached bool row per rule
asked about. Maps are built on demand, cached, and shared by every context with the same
candidate list (groups without rules of a plane make no new map). A policy has at most
4 x (distinct sequences) contexts; lint builds each once. Measured (benchmarks/RESULTS.md,
section 4): 2,000 rules on 200 instances in 0.45-3.8 s on one core, by shape.

Exactness. Nothing is sampled; tests compare every query with a brute force over the cell grid
of all boundaries, evaluated by `classifier.reference`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from classifier.codes import ICMP_PROTOCOL_OF_VERSION, PORT_PROTOCOLS
from classifier.policy import Direction, Instance, Policy, Rule, merge_ranges

SERVICE_UNKNOWN = 65536  # the service of a packet whose ports / ICMP type are not known
SERVICE_END = 65537  # exclusive end of the service axis
FAMILY_ICMP = ICMP_PROTOCOL_OF_VERSION  # the family's ICMP protocol
ADDRESS_END = {4: 1 << 32, 6: 1 << 128}  # exclusive end of the remote axis per family
CUBE_BLOCK = 1 << 22  # booleans per block of the cube pass
SMALL_CUBE = 1 << 13  # up to this many cube elements, one cumulative count finds both rules
PAINT_CALL_COST = 4000  # one painted candidate's fixed cost, in cube elements (measured)

Ranges = tuple[tuple[int, int], ...]  # inclusive, ascending, merged (touching ones joined)


def service_ranges(rule: Rule) -> Ranges | None:
    """The rule's services on the service axis; None = every service of its protocol(s)."""
    if rule.ports is not None:
        return tuple(rule.ports)
    if rule.icmp_type is not None:
        base = rule.icmp_type * 256
        if rule.icmp_code is None:
            return ((base, base + 255),)
        return ((base + rule.icmp_code, base + rule.icmp_code),)
    return None


def has_services(version: int, protocol: int) -> bool:
    """Does a point of this protocol carry a service (a port or an ICMP type/code)?"""
    return protocol in PORT_PROTOCOLS or FAMILY_ICMP[version] == protocol


def service_of(
    version: int, protocol: int, dport: int | None, icmp_type: int | None, icmp_code: int | None
) -> int:
    """A packet's point on the service axis (0 for a protocol without services)."""
    if protocol in PORT_PROTOCOLS:
        return SERVICE_UNKNOWN if dport is None else dport
    if FAMILY_ICMP[version] == protocol:
        if icmp_type is None or icmp_code is None:
            return SERVICE_UNKNOWN
        return icmp_type * 256 + icmp_code
    return 0


def ranges_intersect(a: Ranges, b: Ranges) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def subtract_ranges(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> Ranges:
    """a minus b, both merged inclusive ranges."""
    result: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        while j < len(b) and b[j][1] < lo:
            j += 1
        k = j
        start = lo
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > start:
                result.append((start, b[k][0] - 1))
            start = max(start, b[k][1] + 1)
            k += 1
        if start <= hi:
            result.append((start, hi))
    return tuple(result)


def in_ranges(ranges: Ranges, value: int) -> bool:
    i = bisect.bisect_right(ranges, (value, 1 << 130)) - 1
    return i >= 0 and ranges[i][0] <= value <= ranges[i][1]


@dataclass(frozen=True)
class Box:
    """A rule's match set (analysis.md section 1) as remote ranges x protocol x services."""

    remote: Ranges  # () = no address at all: the match set is empty
    protocol: int | None  # None = every protocol
    services: Ranges | None  # None = every service

    @property
    def empty(self) -> bool:
        return not self.remote

    def intersects(self, other: Box) -> bool:
        if self.empty or other.empty:
            return False
        if self.protocol is not None and other.protocol is not None:
            if self.protocol != other.protocol:
                return False
            if self.services is not None and other.services is not None:
                if not ranges_intersect(self.services, other.services):
                    return False
        return ranges_intersect(self.remote, other.remote)

    def contains(self, remote: int, protocol: int, service: int) -> bool:
        if self.protocol is not None and self.protocol != protocol:
            return False
        if self.services is not None and not in_ranges(self.services, service):
            return False
        return in_ranges(self.remote, remote)


class Plane:
    """Every remote boundary of the enabled rules of one (direction, version), ranked."""

    def __init__(self, version: int, boxes: Iterable[Box]):
        self.version = version
        self.end = ADDRESS_END[version]
        bounds = {0}
        for box in boxes:
            for lo, hi in box.remote:
                bounds.add(lo)
                if hi + 1 < self.end:
                    bounds.add(hi + 1)
        self.cuts: list[int] = sorted(bounds)  # rank -> first address of elementary interval
        self._rank = {value: rank for rank, value in enumerate(self.cuts)}

    def spans(self, remote: Ranges) -> np.ndarray:
        """The ranges as [start rank, end rank) rows (int64; the end may be len(cuts))."""
        rows = [
            (self._rank[lo], self._rank[hi + 1] if hi + 1 < self.end else len(self.cuts))
            for lo, hi in remote
        ]
        return np.array(rows, np.int64).reshape(-1, 2)

    def index(self, numbers: list[int], boxes: list[Box], spans: list[np.ndarray]) -> None:
        """Bitsets for `meets`: per rule of the plane its elementary remote intervals (the
        ranks) and its elementary service intervals (cut at every service boundary of the
        plane), one Python int each, packed into rows of 64-bit words."""
        self.numbers = numbers
        self.row_of = {number: row for row, number in enumerate(numbers)}
        self.protocols = np.array(
            [-1 if b.protocol is None else b.protocol for b in boxes], np.int16
        )
        cuts = sorted(
            {0}
            | {lo for b in boxes for lo, _ in b.services or ()}
            | {hi + 1 for b in boxes for _, hi in b.services or () if hi + 1 < SERVICE_END}
        )
        rank = {value: n for n, value in enumerate(cuts)}
        service_spans = [
            np.array([(0, len(cuts))], np.int64)
            if b.services is None
            else np.array(
                [
                    (rank[lo], rank[hi + 1] if hi + 1 < SERVICE_END else len(cuts))
                    for lo, hi in b.services
                ],
                np.int64,
            ).reshape(-1, 2)
            for b in boxes
        ]
        self.remote_bits = _span_bits(spans, len(self.cuts))
        self.service_bits = _span_bits(service_spans, len(cuts))
        self._meets: dict[int, np.ndarray] = {}

    def meets(self, number: int) -> np.ndarray:
        """bool per rule of the plane (`numbers` order): its match set meets rule `number`'s.
        Exact: two boxes meet iff protocols agree (or one is all), an elementary service
        interval and an elementary remote interval are in both."""
        found = self._meets.get(number)
        if found is None:
            row = self.row_of[number]
            protocol = self.protocols[row]
            found = (self.remote_bits & self.remote_bits[row]).any(axis=1)
            found &= (self.service_bits & self.service_bits[row]).any(axis=1)
            if protocol >= 0:
                found &= (self.protocols == protocol) | (self.protocols < 0)
            self._meets[number] = found
        return found

    def address_range(self, start_rank: int, end_rank: int) -> tuple[int, int]:
        """Inclusive addresses of the ranks [start_rank, end_rank)."""
        last = self.cuts[end_rank] - 1 if end_rank < len(self.cuts) else self.end - 1
        return self.cuts[start_rank], last


def _span_bits(spans: Sequence[np.ndarray], size: int) -> np.ndarray:
    """[start, end) index rows per member as bitsets: one row of 64-bit words per member."""
    words = max(1, -(-size // 64))
    bits = np.zeros((len(spans), words), np.uint64)
    for row, pieces in enumerate(spans):
        value = 0
        for start, end in pieces.tolist():
            value |= ((1 << (end - start)) - 1) << start
        bits[row] = np.frombuffer(value.to_bytes(words * 8, "little"), np.uint64)
    return bits


def sequence_key(instance: Instance) -> tuple[str, ...]:
    return tuple(instance.security_groups)


class KeySpace:
    """The match sets of a policy's rules and the decision maps of its contexts.

    Rules are numbered in policy order (`policy.rules()`); candidate lists and decision maps
    speak of those numbers. Build once per policy; `context()` builds maps on demand.
    """

    def __init__(self, policy: Policy):
        self.policy = policy
        self.rules: list[Rule] = list(policy.rules())
        self.index = {id(rule): i for i, rule in enumerate(self.rules)}
        self._members = self._member_ranges()
        self.boxes: list[Box | None] = [
            self._box(rule) if rule.enabled else None for rule in self.rules
        ]
        self.planes: dict[tuple[str, int], Plane] = {}
        self.spans: list[np.ndarray | None] = [None] * len(self.rules)
        every_service = np.array([[0, SERVICE_END]], np.int64)
        self.service_spans = [
            every_service
            if box is None or box.services is None
            else np.array([(lo, hi + 1) for lo, hi in box.services], np.int64).reshape(-1, 2)
            for box in self.boxes
        ]
        for direction in ("ingress", "egress"):
            for version in (4, 6):
                wanted = [
                    i
                    for i, rule in enumerate(self.rules)
                    if self.boxes[i] is not None
                    and rule.direction == direction
                    and rule.ip_version == version
                ]
                plane = Plane(version, (self._box_of(i) for i in wanted))
                self.planes[(direction, version)] = plane
                for i in wanted:
                    self.spans[i] = plane.spans(self._box_of(i).remote)
                plane.index(
                    wanted,
                    [self._box_of(i) for i in wanted],
                    [s for s in (self.spans[i] for i in wanted) if s is not None],
                )
        # sequences in use, each with its instances in policy order, ordered by first instance
        self.sequences: dict[tuple[str, ...], list[str]] = {}
        for instance in policy.instances.values():
            if instance.security_groups:
                self.sequences.setdefault(sequence_key(instance), []).append(instance.id)
        self._group_rules: dict[str, list[int]] = {gid: [] for gid in policy.groups}
        for i, rule in enumerate(self.rules):
            self._group_rules[rule.group_id].append(i)
        self._maps: dict[tuple[int, tuple[int, ...]], DecisionMap] = {}
        self._candidates: dict[tuple[tuple[str, ...], str, int], tuple[int, ...]] = {}

    # --- match sets ----------------------------------------------------------------------

    def _member_ranges(self) -> dict[tuple[str, int], Ranges]:
        """Remote-group members (every IP of the family on every instance with the group),
        merged into ranges: a fleet of consecutive addresses is one range."""
        found: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for instance in self.policy.instances.values():
            for gid in instance.security_groups:
                for ip in instance.ips:
                    found.setdefault((gid, ip.version), []).append((int(ip), int(ip)))
        return {key: tuple(merge_ranges(values)) for key, values in found.items()}

    def remote_ranges(self, rule: Rule) -> Ranges:
        """The rule's remote as merged address ranges of its family (() = none)."""
        version = rule.ip_version
        if rule.remote_group_id is not None:
            return self._members.get((rule.remote_group_id, version), ())
        if rule.remote_address_group_id is not None:
            group = self.policy.address_groups[rule.remote_address_group_id]
            return tuple(
                merge_ranges(
                    [
                        (int(entry.first), int(entry.last))
                        for entry in group.entries
                        if entry.first.version == version
                    ]
                )
            )
        if rule.remote_prefixes:
            return tuple(
                merge_ranges(
                    [
                        (int(prefix.network_address), int(prefix.broadcast_address))
                        for prefix in rule.remote_prefixes
                        if prefix.version == version
                    ]
                )
            )
        return ((0, ADDRESS_END[version] - 1),)

    def _box(self, rule: Rule) -> Box:
        services = service_ranges(rule)
        remote = self.remote_ranges(rule)
        if services is not None and (
            rule.protocol is None
            or not has_services(rule.ip_version, rule.protocol)
            or (rule.ports is not None and rule.protocol not in PORT_PROTOCOLS)
            or (rule.icmp_type is not None and rule.protocol != FAMILY_ICMP[rule.ip_version])
        ):
            remote = ()  # a restriction the rule's protocol cannot satisfy (never loads)
        return Box(remote, rule.protocol, services)

    def _box_of(self, i: int) -> Box:
        box = self.boxes[i]
        assert box is not None, "disabled rules have no match set"
        return box

    def box(self, rule: Rule) -> Box | None:
        """The match set of an enabled rule; None for a disabled one."""
        return self.boxes[self.index[id(rule)]]

    def full_remote(self, rule: Rule) -> bool:
        """The rule's remote is the whole address space of its family."""
        return self.remote_ranges(rule) == ((0, ADDRESS_END[rule.ip_version] - 1),)

    def meets(self, number: int, others: Sequence[int]) -> np.ndarray:
        """bool per rule number of `others` (enabled rules of `number`'s direction and
        version): does its match set intersect rule `number`'s?"""
        rule = self.rules[number]
        plane = self.planes[(rule.direction, rule.ip_version)]
        row = plane.meets(number)
        return row[[plane.row_of[other] for other in others]]

    # --- contexts ------------------------------------------------------------------------

    def group_rules(self, group_id: str) -> list[int]:
        return self._group_rules[group_id]

    def candidates(
        self, sequence: Sequence[str], direction: Direction, version: int
    ) -> tuple[int, ...]:
        """docs/semantics.md section 2 steps 1-2: the enabled rules of the sequence's groups with
        this direction and ethertype, by (group position, priority, deny first, position)."""
        cache_key = (tuple(sequence), direction, version)
        cached = self._candidates.get(cache_key)
        if cached is not None:
            return cached
        keyed: list[tuple[tuple[int, int, int, int], int]] = []
        for group_position, gid in enumerate(sequence):
            for i in self._group_rules[gid]:
                rule = self.rules[i]
                if not rule.enabled or rule.direction != direction or rule.ip_version != version:
                    continue
                deny_first = 0 if rule.action == "deny" else 1
                keyed.append(((group_position, rule.priority, deny_first, rule.position), i))
        keyed.sort()
        found = tuple(i for _, i in keyed)
        self._candidates[cache_key] = found
        return found

    def context(self, sequence: Sequence[str], direction: Direction, version: int) -> DecisionMap:
        candidates = self.candidates(sequence, direction, version)
        key = (version if direction == "ingress" else -version, candidates)
        found = self._maps.get(key)
        if found is None:
            found = DecisionMap(self, self.planes[(direction, version)], candidates)
            self._maps[key] = found
        return found

    @property
    def maps_built(self) -> int:
        return len(self._maps)


# --- decision maps ---------------------------------------------------------------------------


def _classes(spans: Sequence[np.ndarray], end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elementary intervals of an axis and their classes.

    `spans[k]`: member k's set as [start, end) rows (disjoint, not touching). Returns the
    interval starts (ascending, the first 0), each interval's class, and the class x member
    membership matrix (bool).
    """
    n = len(spans)
    rows = np.concatenate(spans) if n else np.empty((0, 2), np.int64)
    owner = np.repeat(np.arange(n, dtype=np.int64), [len(s) for s in spans])
    cuts = np.unique(np.concatenate((np.zeros(1, np.int64), rows[:, 0], rows[:, 1])))
    cuts = cuts[cuts < end]
    if n == 0:
        return cuts, np.zeros(len(cuts), np.int32), np.zeros((1, 0), bool)
    diff = np.zeros((len(cuts) + 1, n), np.int8)
    # a member's spans neither overlap nor touch: no two of its starts or ends share a cell
    diff[np.searchsorted(cuts, rows[:, 0]), owner] = 1
    diff[np.searchsorted(cuts, rows[:, 1]), owner] = -1
    member = np.cumsum(diff[: len(cuts)], axis=0, dtype=np.int8) > 0
    packed = np.ascontiguousarray(np.packbits(member, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first_row, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return cuts, inverse.astype(np.int32).ravel(), member[first_row]


def _first_two(
    remote: np.ndarray, service: np.ndarray, method: str | None = None, block_size: int = CUBE_BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell (remote class, service class): the first and second member whose box holds
    it (-1: none). `remote` is C_R x n, `service` C_S x n (bool). `method` ("small", "cube",
    "paint") overrides the choice by cost (tests)."""
    c_r, n = remote.shape
    c_s = service.shape[0]
    first = np.full((c_r, c_s), -1, np.int32)
    second = np.full((c_r, c_s), -1, np.int32)
    if n == 0:
        return first, second
    if method is None:
        boxes = int(
            (remote.sum(axis=0, dtype=np.int64) * service.sum(axis=0, dtype=np.int64)).sum()
        )
        if c_r * c_s * n > n * PAINT_CALL_COST + boxes:
            method = "paint"
        else:
            method = "small" if c_r * c_s * n <= SMALL_CUBE else "cube"
    if method != "paint":
        if method == "small":
            # matches so far along the candidates: the first is where the count reaches 1
            count = np.cumsum(remote[:, None, :] & service[None, :, :], axis=2, dtype=np.int32)
            total = count[..., -1]
            first[:] = np.where(total >= 1, (count >= 1).argmax(axis=2), -1)
            second[:] = np.where(total >= 2, (count >= 2).argmax(axis=2), -1)
            return first, second
        block = max(1, block_size // max(1, c_s * n))
        for r0 in range(0, c_r, block):
            cube = remote[r0 : r0 + block, None, :] & service[None, :, :]
            f = cube.argmax(axis=2)[..., None]
            has_f = np.take_along_axis(cube, f, axis=2)[..., 0]
            np.put_along_axis(cube, f, False, axis=2)
            s = cube.argmax(axis=2)[..., None]
            has_s = np.take_along_axis(cube, s, axis=2)[..., 0]
            first[r0 : r0 + block] = np.where(has_f, f[..., 0], -1)
            second[r0 : r0 + block] = np.where(has_s, s[..., 0], -1)
        return first, second
    # paint each member's box in evaluation order
    open_cells = c_r * c_s
    for k in range(n):
        rows = np.flatnonzero(remote[:, k])
        cols = np.flatnonzero(service[:, k])
        if not rows.size or not cols.size:
            continue
        cells = np.ix_(rows, cols)
        f = first[cells]
        s = second[cells]
        fresh = f < 0
        seconded = ~fresh & (s < 0)
        first[cells] = np.where(fresh, k, f)
        second[cells] = np.where(seconded, k, s)
        open_cells -= int(seconded.sum())
        if open_cells == 0:
            break
    return first, second


@dataclass
class Slice:
    """One protocol (or every other protocol) of a context, as a grid of cells."""

    protocol: int | None  # None: every protocol no candidate names
    members: np.ndarray  # int32: candidate positions of the slice, evaluation order
    remote_cuts: np.ndarray  # int64 plane ranks: starts of the remote elementary intervals
    remote_class: np.ndarray  # int32 per remote interval
    service_cuts: np.ndarray  # int64: starts of the service elementary intervals
    service_class: np.ndarray  # int32 per service interval
    first: np.ndarray  # int32 [remote class, service class]: deciding candidate position or -1
    second: np.ndarray  # int32: the candidate deciding once `first` is deleted, or -1

    def service_cell(self, service: int) -> int:
        return int(self.service_class[np.searchsorted(self.service_cuts, service, "right") - 1])


class DecisionMap:
    """The deciding rules of one context over its whole key space (see the design note)."""

    def __init__(self, space: KeySpace, plane: Plane, candidates: tuple[int, ...]):
        self.space = space
        self.plane = plane
        self.candidates = candidates  # rule numbers, evaluation order
        self.rules = [space.rules[i] for i in candidates]
        self._positions = {number: k for k, number in enumerate(candidates)}
        self.ids = [rule.id for rule in self.rules]
        self.allows = np.array([rule.action == "allow" for rule in self.rules], bool)
        self.plane_rows = np.array([plane.row_of[i] for i in candidates], np.int64)
        boxes = [space._box_of(i) for i in candidates]
        named = sorted({box.protocol for box in boxes if box.protocol is not None})
        self.slices: dict[int | None, Slice] = {}
        for protocol in [*named, None]:
            members = [
                k for k, box in enumerate(boxes) if box.protocol is None or box.protocol == protocol
            ]
            self.slices[protocol] = self._slice(protocol, members, boxes)
        self._decided: np.ndarray | None = None
        self._fallbacks: dict[int, set[int]] | None = None

    def _slice(self, protocol: int | None, members: list[int], boxes: list[Box]) -> Slice:
        remote_spans: list[np.ndarray] = []
        for k in members:
            spans = self.space.spans[self.candidates[k]]
            assert spans is not None, "every candidate is an enabled rule of this plane"
            remote_spans.append(spans)
        service_spans = [self.space.service_spans[self.candidates[k]] for k in members]
        r_cuts, r_class, r_members = _classes(remote_spans, len(self.plane.cuts))
        s_cuts, s_class, s_members = _classes(service_spans, SERVICE_END)
        first, second = _first_two(r_members, s_members)
        positions = np.array([*members, -1], np.int32)  # index -1 picks the trailing -1
        return Slice(
            protocol,
            positions[:-1],
            r_cuts,
            r_class,
            s_cuts,
            s_class,
            positions[first],
            positions[second],
        )

    def slice_of(self, protocol: int) -> Slice:
        return self.slices.get(protocol, self.slices[None])

    def covering(self, position: int) -> np.ndarray:
        """The candidate positions before `position` whose match sets meet its own."""
        row = self.plane.meets(self.candidates[position])
        return np.flatnonzero(row[self.plane_rows[:position]])

    def position(self, rule_number: int) -> int:
        """The candidate position of rule number `rule_number` (KeyError: not a candidate)."""
        return self._positions[rule_number]

    # --- queries for lint ----------------------------------------------------------------

    def decided(self) -> np.ndarray:
        """bool per candidate position: it is the deciding rule of at least one point."""
        if self._decided is None:
            found = np.zeros(len(self.candidates) + 1, bool)
            for piece in self.slices.values():
                found[piece.first.ravel()] = True  # -1 lands on the spare last element
            self._decided = found[:-1]
        return self._decided

    def fallbacks(self) -> dict[int, set[int]]:
        """Per candidate position: the positions (-1: implicit deny) that decide its points
        once it is deleted (the `second` of every cell it decides)."""
        if self._fallbacks is None:
            result: dict[int, set[int]] = {}
            n = len(self.candidates) + 1
            for piece in self.slices.values():
                decided = piece.first >= 0
                pairs = np.unique(
                    piece.first[decided].astype(np.int64) * n + piece.second[decided] + 1
                )
                for value in pairs.tolist():
                    result.setdefault(value // n, set()).add(value % n - 1)
            self._fallbacks = result
        return self._fallbacks

    def deciders_at_service(self, protocol: int, service: int) -> set[int]:
        """Candidate positions that decide some point (any remote) of (protocol, service)."""
        piece = self.slice_of(protocol)
        column = piece.first[:, piece.service_cell(service)]
        return {k for k in np.unique(column).tolist() if k >= 0}

    # --- queries for exposure ------------------------------------------------------------

    def remote_decisions(self, protocol: int, service: int) -> list[tuple[int, int, int]]:
        """Over the whole remote axis at (protocol, service): (first, last, deciding candidate
        position or -1), ascending, maximal (neighbours differ in their deciding rule)."""
        piece = self.slice_of(protocol)
        column = piece.first[:, piece.service_cell(service)]
        deciding = column[piece.remote_class]
        starts = piece.remote_cuts.tolist()
        ends = [*starts[1:], len(self.plane.cuts)]
        result: list[tuple[int, int, int]] = []
        for start, end, k in zip(starts, ends, deciding.tolist(), strict=True):
            lo, hi = self.plane.address_range(start, end)
            if result and result[-1][2] == k:
                result[-1] = (result[-1][0], hi, k)
            else:
                result.append((lo, hi, k))
        return result

    def services_decided(self, position: int, protocol: int) -> Ranges:
        """The services of `protocol` at which the candidate decides for some remote."""
        piece = self.slice_of(protocol)
        hit = (piece.first == position).any(axis=0)[piece.service_class]
        starts = piece.service_cuts.tolist()
        ends = [*starts[1:], SERVICE_END]
        return tuple(
            merge_ranges(
                [(lo, hi - 1) for lo, hi, on in zip(starts, ends, hit.tolist(), strict=True) if on]
            )
        )

    def decide(self, remote: int, protocol: int, service: int) -> int:
        """The deciding candidate position of one point, or -1 (implicit deny)."""
        piece = self.slice_of(protocol)
        rank = bisect.bisect_right(self.plane.cuts, remote) - 1
        interval = int(np.searchsorted(piece.remote_cuts, rank, "right")) - 1
        return int(piece.first[piece.remote_class[interval], piece.service_cell(service)])
