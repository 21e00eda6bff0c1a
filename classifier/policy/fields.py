"""Field parsers of policy files: one value -> its normal form, or `Invalid(message)`.

Each parser is a small pure function; its message says what was found and what is allowed,
and the caller (`classifier.policy.loader`) adds where (file, object, field). Nothing here
trusts types: YAML can put a list, a date or a bool anywhere. The vocabulary (accepted words,
known fields, limits) is here too, so a reader of the format finds it in one place.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import TypeVar

from classifier.policy.model import (
    PROTOCOL_NUMBERS,
    Action,
    AddressRange,
    Direction,
    IPAddress,
    IPNetwork,
    merge_ranges,
)

T = TypeVar("T")

# --- vocabulary --------------------------------------------------------------------------

DIRECTIONS: dict[str, Direction] = {
    "ingress": "ingress",
    "egress": "egress",
    "inbound": "ingress",
    "outbound": "egress",
}
ACTIONS: dict[str, Action] = {"allow": "allow", "deny": "deny"}
ETHERTYPES = {"ipv4": 4, "ipv6": 6}
ALL_PROTOCOLS = frozenset({"", "all", "any", "0"})
# Neutron spells ICMPv6 "ipv6-icmp"; accepting it lets Neutron-style exports load unchanged.
PROTOCOL_ALIASES = {**PROTOCOL_NUMBERS, "ipv6-icmp": 58}

MAX_PORT_GROUPS = 20
MAX_ADDRESS_GROUP_ENTRIES = 20
MAX_DESCRIPTION = 255

ICMP_TYPE_NAMES: dict[str, tuple[int, int]] = {
    "echo": (8, 0),
    "echo reply": (0, 0),
    "fragment need df set": (3, 4),
    "host redirect": (5, 1),
    "host tos redirect": (5, 3),
    "host unreachable": (3, 1),
    "information reply": (16, 0),
    "information request": (15, 0),
    "net redirect": (5, 0),
    "net tos redirect": (5, 2),
    "net unreachable": (3, 0),
    "parameter problem": (12, 0),
    "port unreachable": (3, 3),
    "protocol unreachable": (3, 2),
    "reassembly timeout": (11, 1),
    "source quench": (4, 0),
    "source route failed": (3, 5),
    "timestamp reply": (14, 0),
    "timestamp request": (13, 0),
    "ttl exceeded": (11, 0),
}

# Fields the cloud's API adds to what it returns: they load and are ignored (no warning).
API_FIELDS = frozenset(
    {
        "project_id",
        "tenant_id",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
        "enterprise_project_id",
    }
)
TOP_FIELDS = frozenset(
    {"security_groups", "security_group_rules", "address_groups", "ip_address_groups", "instances"}
)
TOP_IGNORED = frozenset({"request_id", "page_info", "links"})
GROUP_FIELDS = frozenset({"id", "name", "description", "rules", "security_group_rules"})
GROUP_IGNORED = API_FIELDS | {"stateful", "shared"}
RULE_FIELDS = frozenset(
    {
        "id",
        "direction",
        "priority",
        "action",
        "ethertype",
        "protocol",
        "multiport",
        "port_range_min",
        "port_range_max",
        "icmp_type",
        "icmp_code",
        "remote_ip_prefix",
        "remote_group_id",
        "remote_address_group_id",
        "description",
        "enabled",
    }
)
RULE_IGNORED = API_FIELDS | {"security_group_id", "normalized_cidr", "belongs_to_default_sg"}
ADDRESS_GROUP_FIELDS = frozenset({"id", "name", "description", "ip_version", "ip_set"})
ADDRESS_GROUP_IGNORED = API_FIELDS | {"max_capacity", "ip_extra_set", "status", "status_message"}
INSTANCE_FIELDS = frozenset({"id", "name", "ips", "security_groups"})
INSTANCE_IGNORED = API_FIELDS | {"description"}


MAX_DIGITS = 20  # longer digit strings are out of every range here; int() of huge ones is slow


def shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


HUGE = int(10**MAX_DIGITS)  # the sentinel of a number longer than MAX_DIGITS


def small_int(digits: str) -> int:
    """int() of a digit string that fits every range of the format (ports, priorities, ...):
    longer ones become a huge sentinel rather than a slow or refused conversion."""
    digits = digits.strip().lstrip("+")
    negative = digits.startswith("-")
    body = digits.lstrip("-").lstrip("0") or "0"
    if len(body) > MAX_DIGITS:
        return -HUGE if negative else HUGE
    return int(digits)


# --- field parsers: value → normal form, or Invalid(what is wrong, what is allowed) -------


class Invalid(Exception):
    pass


def show(value: object) -> str:
    """A value as a message shows it: strings quoted, containers by their type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return shorten(str(value), 40)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def absent(value: object) -> bool:
    """null and the empty string both mean "not given" for an optional field."""
    return value is None or (isinstance(value, str) and not value.strip())


def parse_integer(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(f"expected {what}, an integer {low}..{high}; got {show(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise Invalid(f"expected {what}, an integer {low}..{high}; got {show(value)}")
        number = int(value)
    elif isinstance(value, str):
        if not re.fullmatch(r"\s*[-+]?[0-9]+\s*", value):
            raise Invalid(f"expected {what}, an integer {low}..{high}; got {show(value)}")
        number = small_int(value)
    else:
        number = value
    if not low <= number <= high:
        raise Invalid(f"{shorten(str(number), 40)} is out of range: allowed {low}..{high}")
    return number


def parse_word(value: object, choices: Mapping[str, T], allowed: str) -> T:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise Invalid(f"got {show(value)}: allowed {allowed} (any case)")
    return choices[value.strip().lower()]


def parse_priority(value: object) -> int:
    return parse_integer(value, 1, 100, "a priority")


def parse_action(value: object) -> Action:
    return parse_word(value, ACTIONS, "allow, deny")


def parse_text(value: object, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected {what}, got {show(value)}")
    return value


def parse_ident(value: object) -> str:
    """An object id: a non-empty string, used exactly as written (spaces are part of it;
    an integer is taken as its decimal text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if absent(value):
        raise Invalid("required: a non-empty string id")
    if not isinstance(value, str):
        raise Invalid(f"expected a non-empty string id, got {show(value)}")
    return value


def parse_description(value: object) -> str:
    text = parse_text(value)
    if len(text) > MAX_DESCRIPTION:
        raise Invalid(f"{len(text)} characters: at most {MAX_DESCRIPTION} allowed")
    bad = sorted({c for c in text if c in "<>"})
    if bad:
        raise Invalid(f"contains {' and '.join(repr(c) for c in bad)}: '<' and '>' are not allowed")
    return text


def parse_protocol(value: object) -> int | None:
    """None for "all protocols", else the IP protocol number."""
    if isinstance(value, str) and value.strip().lower() in ALL_PROTOCOLS:
        return None
    if isinstance(value, str) and value.strip().lower() in PROTOCOL_ALIASES:
        return PROTOCOL_ALIASES[value.strip().lower()]
    allowed = "all/any/0/empty (all protocols), tcp, udp, icmp, icmpv6, gre, or a number 1..255"
    try:  # 0 in any spelling a number may have ('00', 0.0, '+0') means all protocols
        if parse_integer(value, 0, 255, "a protocol number") == 0:
            return None
    except Invalid:
        pass
    if isinstance(value, str) and not re.fullmatch(r"\s*[-+]?[0-9]+\s*", value):
        raise Invalid(f"unknown protocol {show(value)}: allowed {allowed}")
    try:
        return parse_integer(value, 1, 255, "a protocol number")
    except Invalid:
        raise Invalid(f"got {show(value)}: allowed {allowed}") from None


def merge_ports(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...] | None:
    """Sorted, merged (touching ranges join); None when the union is every port 1-65535."""
    merged = merge_ranges(ranges)
    if merged == [(1, 65535)]:
        return None
    return tuple(merged)


_PORT_GROUP = re.compile(r"([0-9]+)(?:\s*-\s*([0-9]+))?")


def parse_multiport(value: object) -> tuple[tuple[int, int], ...] | None:
    allowed = "a port 1..65535, a range lo-hi, or a comma list of those like '22,3389,80-90'"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Invalid(f"expected {allowed}; got {show(value)}")
    groups = [part.strip() for part in value.split(",")]
    if len(groups) > MAX_PORT_GROUPS:
        raise Invalid(f"{len(groups)} comma groups: at most {MAX_PORT_GROUPS} allowed")
    ranges = []
    for part in groups:
        match = _PORT_GROUP.fullmatch(part)
        if not match:
            what = "an empty entry" if not part else repr(part)
            raise Invalid(f"{what} in {show(value)}: expected {allowed}")
        lo = small_int(match.group(1))
        hi = small_int(match.group(2)) if match.group(2) is not None else lo
        for port in (lo, hi):
            if not 1 <= port <= 65535:
                raise Invalid(f"port {port} in {show(value)} is out of range: allowed 1..65535")
        if lo > hi:
            raise Invalid(f"range {part!r} has its low end above its high end: write {hi}-{lo}")
        ranges.append((lo, hi))
    return merge_ports(ranges)


def icmp_name(value: str) -> tuple[int, int] | None:
    key = " ".join(re.split(r"[\s_-]+", value.strip().lower()))
    return ICMP_TYPE_NAMES.get(key)


def parse_address(value: object, what: str = "an IP address") -> IPAddress:
    if not isinstance(value, str):
        raise Invalid(
            f"expected {what} (a string like '10.0.0.5' or '2001:db8::5'), got {show(value)}"
        )
    text = value.strip()
    if "/" in text:
        raise Invalid(f"{value!r} is a prefix: expected a single address")
    if "%" in text:
        raise Invalid(f"{value!r} has a zone index: expected a plain address")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise Invalid(f"{value!r} is not {what}") from None


def parse_network(text: str) -> IPNetwork:
    """One IP or CIDR; a bare IP is /32 or /128; host bits set is an error (spec section 1)."""
    text = text.strip()
    if "%" in text:
        raise Invalid(f"{show(text)} has a zone index: expected an IP or CIDR")
    address, slash, length = text.partition("/")
    if slash and not (length.isascii() and length.isdigit()):
        raise Invalid(f"{show(text)}: the prefix length must be a number like /24")
    try:
        host = ipaddress.ip_address(address)
    except ValueError:
        raise Invalid(f"{show(text)} is not an IP address or CIDR") from None
    bits = small_int(length) if slash else host.max_prefixlen
    if bits > host.max_prefixlen:
        raise Invalid(
            f"{show(text)}: prefix length {shorten(str(bits), 24)} is above {host.max_prefixlen}"
        )
    network = ipaddress.ip_network(f"{host}/{shorten(str(bits), 24)}", strict=False)
    if network.network_address != host:
        raise Invalid(f"{show(text)} has host bits set: did you mean '{network}'?")
    return network


def parse_entry(value: object, version: int | None) -> AddressRange:
    """An address-group entry: IP, CIDR or range 'a-b' → inclusive bounds."""
    if not isinstance(value, str):
        raise Invalid(f"expected an IP, a CIDR or a range 'a-b' (a string), got {show(value)}")
    if "-" in value:
        first_text, _, last_text = value.partition("-")
        first = parse_address(first_text, "an IP address")
        last = parse_address(last_text, "an IP address")
        if first.version != last.version:
            raise Invalid(f"range {value!r} mixes IPv4 and IPv6")
        if first > last:  # type: ignore[operator]  # same version, checked above
            raise Invalid(f"range {value!r} has its first address above its last")
        result = AddressRange(first, last)
    else:
        network = parse_network(value)
        result = AddressRange(network.network_address, network.broadcast_address)
    if version is not None and result.first.version != version:
        raise Invalid(f"{value!r} is IPv{result.first.version}: the group is IPv{version}")
    return result
