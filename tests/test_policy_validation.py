"""Every field rule of spec section 1, one valid and one invalid case at least, and the corpus
of broken files in tests/policies/broken/: each must fail with a PolicyError that names the
file, the object and the field (or, for a file that cannot be parsed, the line)."""

from __future__ import annotations

import copy
import ipaddress
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.errors import PolicyError, Problem
from classifier.policy import AddressRange, Policy, Rule, load_policy, load_policy_data

BROKEN = Path(__file__).resolve().parent / "policies" / "broken"


def make_policy(
    rules: list[Any] | None = None,
    *,
    address_groups: list[Any] | None = None,
    instances: list[Any] | None = None,
    groups: list[Any] | None = None,
) -> Policy:
    """A small valid policy around the objects under test: groups sg-a (holding `rules`) and
    sg-b, IPv4 group ag4 and IPv6 group ag6, one instance."""
    data = {
        "address_groups": [
            {"id": "ag4", "ip_version": 4, "ip_set": ["192.0.2.0/24"]},
            {"id": "ag6", "ip_version": 6, "ip_set": ["2001:db8::/64"]},
            *(address_groups or []),
        ],
        "security_groups": [
            {"id": "sg-a", "rules": rules or []},
            {"id": "sg-b"},
            *(groups or []),
        ],
        "instances": instances
        if instances is not None
        else [
            {"id": "vm-1", "ips": ["10.0.0.1"], "security_groups": ["sg-a", "sg-b"]},
        ],
    }
    return load_policy_data(data, "test.yaml")


def one_rule(**fields: Any) -> Rule:
    rule = {"direction": "ingress", **fields}
    (loaded,) = make_policy([rule]).groups["sg-a"].rules
    return loaded


def problems_of(**kwargs: Any) -> list[Problem]:
    with pytest.raises(PolicyError) as info:
        make_policy(**kwargs)
    return info.value.problems


def rule_problems(**fields: Any) -> list[Problem]:
    rule = {"direction": "ingress", **fields} if "direction" not in fields else fields
    rule = {key: value for key, value in rule.items() if value is not MISSING}
    return problems_of(rules=[rule])


MISSING = object()
V6 = {"ethertype": "IPv6"}

# --- rules: (fields, attribute, expected normal form) ------------------------------------

VALID_RULES: list[tuple[dict[str, Any], str, Any]] = [
    ({}, "id", "sg-a/1"),
    ({"id": "web-http"}, "id", "web-http"),
    ({"id": 7}, "id", "7"),
    ({"id": ""}, "id", "sg-a/1"),
    ({"direction": "ingress"}, "direction", "ingress"),
    ({"direction": "EGRESS"}, "direction", "egress"),
    ({"direction": "Inbound"}, "direction", "ingress"),
    ({"direction": "outbound"}, "direction", "egress"),
    ({}, "priority", 1),
    ({"priority": 100}, "priority", 100),
    ({"priority": "50"}, "priority", 50),
    ({"priority": " 7 "}, "priority", 7),
    ({"priority": 3.0}, "priority", 3),
    ({"priority": None}, "priority", 1),
    ({"priority": ""}, "priority", 1),
    ({}, "action", "allow"),
    ({"action": "DENY"}, "action", "deny"),
    ({"action": "Allow"}, "action", "allow"),
    ({}, "ip_version", 4),
    ({"ethertype": "ipv6"}, "ip_version", 6),
    ({"ethertype": "IPV4"}, "ip_version", 4),
    ({}, "protocol", None),
    ({"protocol": ""}, "protocol", None),
    ({"protocol": "all"}, "protocol", None),
    ({"protocol": "ANY"}, "protocol", None),
    ({"protocol": "0"}, "protocol", None),
    ({"protocol": 0}, "protocol", None),
    ({"protocol": None}, "protocol", None),
    ({"protocol": "TCP"}, "protocol", 6),
    ({"protocol": "udp"}, "protocol", 17),
    ({"protocol": "icmp"}, "protocol", 1),
    ({"protocol": "icmpv6", **V6}, "protocol", 58),
    ({"protocol": "ipv6-icmp", **V6}, "protocol", 58),
    ({"protocol": "gre"}, "protocol", 47),
    ({"protocol": 6}, "protocol", 6),
    ({"protocol": "17"}, "protocol", 17),
    ({"protocol": 1}, "protocol", 1),
    ({"protocol": 58, **V6}, "protocol", 58),
    ({"protocol": 132}, "protocol", 132),
    ({"protocol": 255}, "protocol", 255),
    ({"protocol": "tcp"}, "ports", None),
    ({"protocol": "tcp", "multiport": "80"}, "ports", ((80, 80),)),
    ({"protocol": "tcp", "multiport": 80}, "ports", ((80, 80),)),
    ({"protocol": "udp", "multiport": "22-30"}, "ports", ((22, 30),)),
    (
        {"protocol": "tcp", "multiport": "22,3389,80-90"},
        "ports",
        ((22, 22), (80, 90), (3389, 3389)),
    ),
    (
        {"protocol": "tcp", "multiport": " 22 , 3389 , 80 - 90 "},
        "ports",
        ((22, 22), (80, 90), (3389, 3389)),
    ),
    ({"protocol": "tcp", "multiport": "1-100,50-200"}, "ports", ((1, 200),)),
    ({"protocol": "tcp", "multiport": "80,81"}, "ports", ((80, 81),)),
    ({"protocol": "tcp", "multiport": "1,65535"}, "ports", ((1, 1), (65535, 65535))),
    ({"protocol": "tcp", "multiport": "1-65535"}, "ports", None),
    ({"protocol": "tcp", "multiport": "1-1000,1001-65535"}, "ports", None),
    ({"protocol": "tcp", "multiport": ""}, "ports", None),
    ({"protocol": "tcp", "multiport": ",".join(str(p) for p in range(1, 21))}, "ports", ((1, 20),)),
    ({"protocol": "tcp", "port_range_min": 22, "port_range_max": 30}, "ports", ((22, 30),)),
    ({"protocol": "tcp", "port_range_min": "22"}, "ports", ((22, 22),)),
    ({"protocol": "udp", "port_range_max": 443}, "ports", ((443, 443),)),
    ({"protocol": "tcp", "port_range_min": 1, "port_range_max": 65535}, "ports", None),
    ({"protocol": "tcp", "port_range_min": None, "port_range_max": None}, "ports", None),
    ({"protocol": "icmp"}, "icmp", (None, None)),
    ({"protocol": "icmp", "icmp_type": 8}, "icmp", (8, None)),
    ({"protocol": "icmp", "icmp_type": 0}, "icmp", (0, None)),
    ({"protocol": "icmp", "icmp_type": 255, "icmp_code": 255}, "icmp", (255, 255)),
    ({"protocol": "icmp", "icmp_type": "3", "icmp_code": "4"}, "icmp", (3, 4)),
    ({"protocol": "icmp", "icmp_type": "Echo"}, "icmp", (8, 0)),
    ({"protocol": "icmp", "icmp_type": "echo reply"}, "icmp", (0, 0)),
    ({"protocol": "icmp", "icmp_type": "TTL exceeded"}, "icmp", (11, 0)),
    ({"protocol": "icmp", "icmp_type": "Fragment need DF set"}, "icmp", (3, 4)),
    ({"protocol": "icmp", "icmp_type": "port-unreachable"}, "icmp", (3, 3)),
    ({"protocol": 1, "icmp_type": "Host TOS redirect"}, "icmp", (5, 3)),
    ({"protocol": "icmp", "port_range_min": 3, "port_range_max": 1}, "icmp", (3, 1)),
    ({"protocol": "icmp", "port_range_min": 8}, "icmp", (8, None)),
    ({"protocol": "icmpv6", "icmp_type": 128, **V6}, "icmp", (128, None)),
    ({"protocol": "icmpv6", "icmp_type": 1, "icmp_code": 4, **V6}, "icmp", (1, 4)),
    ({}, "remote_prefixes", ()),
    ({"remote_ip_prefix": ""}, "remote_prefixes", ()),
    ({"remote_ip_prefix": "10.0.0.0/8"}, "remote_prefixes", ("10.0.0.0/8",)),
    ({"remote_ip_prefix": "10.1.2.3"}, "remote_prefixes", ("10.1.2.3/32",)),
    ({"remote_ip_prefix": "0.0.0.0/0"}, "remote_prefixes", ("0.0.0.0/0",)),
    ({"remote_ip_prefix": "2001:db8::1", **V6}, "remote_prefixes", ("2001:db8::1/128",)),
    ({"remote_ip_prefix": "::/0", **V6}, "remote_prefixes", ("::/0",)),
    (
        {"remote_ip_prefix": "10.0.0.0/8, 192.168.1.0/24"},
        "remote_prefixes",
        ("10.0.0.0/8", "192.168.1.0/24"),
    ),
    ({"remote_group_id": "sg-a"}, "remote_group_id", "sg-a"),
    ({"remote_group_id": "sg-b", "remote_ip_prefix": None}, "remote_group_id", "sg-b"),
    ({"remote_address_group_id": "ag4"}, "remote_address_group_id", "ag4"),
    ({"remote_address_group_id": "ag6", **V6}, "remote_address_group_id", "ag6"),
    ({"description": "x" * 255}, "description", "x" * 255),
    (
        {"description": "Zugriff für Büro & Labor (α)"},
        "description",
        "Zugriff für Büro & Labor (α)",
    ),
    ({}, "enabled", True),
    ({"enabled": False}, "enabled", False),
    ({"enabled": True}, "enabled", True),
]


@pytest.mark.parametrize(("fields", "attribute", "expected"), VALID_RULES)
def test_valid_rule_fields(fields: dict[str, Any], attribute: str, expected: Any) -> None:
    rule = one_rule(**fields)
    if attribute == "icmp":
        assert (rule.icmp_type, rule.icmp_code) == expected
    elif attribute == "remote_prefixes":
        assert rule.remote_prefixes == tuple(ipaddress.ip_network(p) for p in expected)
    else:
        assert getattr(rule, attribute) == expected


# (fields, the field the problem names, a fragment of its message)
INVALID_RULES: list[tuple[dict[str, Any], str, str]] = [
    ({"direction": MISSING}, "direction", "required"),
    ({"direction": "sideways"}, "direction", "ingress, egress"),
    ({"direction": 1}, "direction", "ingress, egress"),
    ({"direction": None}, "direction", "required"),
    ({"id": ["x"]}, "id", "string id"),
    ({"priority": 0}, "priority", "allowed 1..100"),
    ({"priority": 101}, "priority", "allowed 1..100"),
    ({"priority": "-3"}, "priority", "allowed 1..100"),
    ({"priority": "high"}, "priority", "integer 1..100"),
    ({"priority": True}, "priority", "got true"),
    ({"priority": 1.5}, "priority", "integer 1..100"),
    ({"priority": [1]}, "priority", "got a list"),
    ({"action": "reject"}, "action", "allow, deny"),
    ({"action": True}, "action", "allow, deny"),
    ({"ethertype": "IPv5"}, "ethertype", "IPv4, IPv6"),
    ({"ethertype": 4}, "ethertype", "IPv4, IPv6"),
    ({"protocol": "sctpish"}, "protocol", "tcp, udp, icmp"),
    ({"protocol": 256}, "protocol", "1..255"),
    ({"protocol": -1}, "protocol", "1..255"),
    ({"protocol": True}, "protocol", "1..255"),
    ({"protocol": ["tcp"]}, "protocol", "got a list"),
    ({"protocol": "icmp", **V6}, "protocol", "needs ethertype IPv4"),
    ({"protocol": 1, **V6}, "protocol", "needs ethertype IPv4"),
    ({"protocol": "icmpv6"}, "protocol", "needs ethertype IPv6"),
    ({"protocol": "58"}, "protocol", "needs ethertype IPv6"),
    ({"protocol": "tcp", "multiport": "0"}, "multiport", "1..65535"),
    ({"protocol": "tcp", "multiport": "65536"}, "multiport", "1..65535"),
    ({"protocol": "tcp", "multiport": "90-80"}, "multiport", "low end above"),
    ({"protocol": "tcp", "multiport": "80,,443"}, "multiport", "empty entry"),
    ({"protocol": "tcp", "multiport": "80,"}, "multiport", "empty entry"),
    ({"protocol": "tcp", "multiport": "80;443"}, "multiport", "comma list"),
    ({"protocol": "tcp", "multiport": "http"}, "multiport", "comma list"),
    ({"protocol": "tcp", "multiport": "22:30"}, "multiport", "comma list"),
    (
        {"protocol": "tcp", "multiport": ",".join(str(p) for p in range(1, 22))},
        "multiport",
        "at most 20",
    ),
    ({"protocol": "tcp", "multiport": [80, 443]}, "multiport", "got a list"),
    ({"protocol": "tcp", "multiport": True}, "multiport", "got true"),
    ({"multiport": "80"}, "multiport", "tcp or udp"),
    ({"protocol": "icmp", "multiport": "80"}, "multiport", "tcp or udp"),
    ({"protocol": "gre", "multiport": "80"}, "multiport", "tcp or udp"),
    ({"protocol": "tcp", "port_range_min": 0}, "port_range_min", "1..65535"),
    ({"protocol": "tcp", "port_range_max": 70000}, "port_range_max", "1..65535"),
    ({"protocol": "tcp", "port_range_min": 30, "port_range_max": 20}, "port_range_min", "above"),
    ({"protocol": "tcp", "multiport": "22", "port_range_min": 22}, "port_range_min", "multiport"),
    ({"port_range_min": 22}, "port_range_min", "tcp or udp"),
    ({"protocol": "icmp", "icmp_type": 256}, "icmp_type", "0..255"),
    ({"protocol": "icmp", "icmp_type": -1}, "icmp_type", "0..255"),
    ({"protocol": "icmp", "icmp_type": 3, "icmp_code": 256}, "icmp_code", "0..255"),
    ({"protocol": "icmp", "icmp_type": True}, "icmp_type", "0..255"),
    ({"protocol": "icmp", "icmp_type": "Bogus"}, "icmp_type", "unknown ICMP type name"),
    ({"protocol": "icmp", "icmp_type": "Echo", "icmp_code": 0}, "icmp_code", "fixes the code"),
    ({"protocol": "icmp", "icmp_code": 0}, "icmp_code", "needs a type"),
    ({"protocol": "icmp", "port_range_max": 0}, "port_range_max", "needs a type"),
    ({"protocol": "icmp", "icmp_type": 8, "port_range_min": 8}, "port_range_min", "one spelling"),
    ({"protocol": "icmpv6", "icmp_type": "Echo", **V6}, "icmp_type", "icmp only"),
    ({"protocol": "tcp", "icmp_type": 8}, "icmp_type", "icmp or icmpv6"),
    ({"icmp_type": 8}, "icmp_type", "icmp or icmpv6"),
    ({"protocol": "udp", "icmp_code": 1}, "icmp_code", "icmp or icmpv6"),
    ({"remote_ip_prefix": "10.0.0.1/24"}, "remote_ip_prefix", "host bits set"),
    ({"remote_ip_prefix": "2001:db8::1/64", **V6}, "remote_ip_prefix", "host bits set"),
    ({"remote_ip_prefix": "2001:db8::/32"}, "remote_ip_prefix", "ethertype is IPv4"),
    ({"remote_ip_prefix": "10.0.0.0/8", **V6}, "remote_ip_prefix", "ethertype is IPv6"),
    ({"remote_ip_prefix": "10.0.0.0/8, ::/0"}, "remote_ip_prefix", "ethertype is IPv4"),
    ({"remote_ip_prefix": "example.com"}, "remote_ip_prefix", "not an IP address or CIDR"),
    ({"remote_ip_prefix": "10.0.0.0/33"}, "remote_ip_prefix", "above 32"),
    ({"remote_ip_prefix": "10.0.0.0/255.0.0.0"}, "remote_ip_prefix", "prefix length"),
    ({"remote_ip_prefix": "10.0.0.0/8,,"}, "remote_ip_prefix", "empty entry"),
    ({"remote_ip_prefix": 10}, "remote_ip_prefix", "IP or CIDR"),
    ({"remote_ip_prefix": ["10.0.0.0/8"]}, "remote_ip_prefix", "comma list"),
    (
        {"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "sg-a"},
        "remote_group_id",
        "at most one remote_*",
    ),
    (
        {"remote_group_id": "sg-b", "remote_address_group_id": "ag4"},
        "remote_address_group_id",
        "at most one remote_*",
    ),
    ({"remote_group_id": "sg-nowhere"}, "remote_group_id", "unknown security group"),
    ({"remote_address_group_id": "ag-nowhere"}, "remote_address_group_id", "unknown address group"),
    ({"remote_address_group_id": "ag6"}, "remote_address_group_id", "must match"),
    ({"remote_address_group_id": "ag4", **V6}, "remote_address_group_id", "must match"),
    ({"description": "x" * 256}, "description", "at most 255"),
    ({"description": "a < b"}, "description", "'<'"),
    ({"description": "a > b"}, "description", "'>'"),
    ({"description": 5}, "description", "expected a string"),
    ({"enabled": "yes"}, "enabled", "true or false"),
    ({"enabled": "true"}, "enabled", "true or false"),
    ({"enabled": 1}, "enabled", "true or false"),
    ({"security_group_id": "sg-b"}, "security_group_id", "differs from the group"),
]


@pytest.mark.parametrize(("fields", "field", "fragment"), INVALID_RULES)
def test_invalid_rule_fields(fields: dict[str, Any], field: str, fragment: str) -> None:
    problems = rule_problems(**fields)
    assert [(p.obj, p.field) for p in problems] == [("group sg-a rule sg-a/1", field)], problems
    assert fragment in problems[0].message
    text = str(problems[0])
    assert text.startswith("test.yaml: group sg-a rule sg-a/1, field ")
    assert f"field '{field}'" in text


def test_a_rule_reports_every_bad_field_at_once() -> None:
    problems = rule_problems(direction="up", priority=0, action="nope", description="<b>")
    assert sorted(p.field for p in problems) == ["action", "description", "direction", "priority"]


def test_rule_ids_are_unique_across_the_policy_explicit_or_defaulted() -> None:
    problems = problems_of(
        rules=[{"direction": "ingress"}, {"id": "sg-a/1", "direction": "egress"}],
        groups=[{"id": "sg-c", "rules": [{"id": "sg-a/1", "direction": "ingress"}]}],
    )
    assert [(p.obj, p.field) for p in problems] == [
        ("group sg-a rule sg-a/1", "id"),
        ("group sg-c rule sg-a/1", "id"),
    ]
    assert "rule #1 of group sg-a (its default id)" in problems[0].message


def test_the_same_rule_id_in_two_groups_is_an_error() -> None:
    problems = problems_of(
        rules=[{"id": "r", "direction": "ingress"}],
        groups=[{"id": "sg-c", "rules": [{"id": "r", "direction": "egress"}]}],
    )
    assert [(p.obj, p.field) for p in problems] == [("group sg-c rule r", "id")]


# --- security groups --------------------------------------------------------------------


def test_group_spellings_of_the_rule_list() -> None:
    nested = make_policy(groups=[{"id": "sg-c", "security_group_rules": [{"direction": "egress"}]}])
    assert [r.id for r in nested.groups["sg-c"].rules] == ["sg-c/1"]
    assert nested.groups["sg-b"].rules == ()


@pytest.mark.parametrize(
    ("group", "obj", "field", "fragment"),
    [
        (
            {"id": "sg-c", "rules": [], "security_group_rules": []},
            "group sg-c",
            "security_group_rules",
            "use one",
        ),
        ({"id": "sg-c", "rules": {"direction": "ingress"}}, "group sg-c", "rules", "list of rules"),
        ({"id": "sg-c", "rules": "none"}, "group sg-c", "rules", "list of rules"),
        ({"name": "no id"}, "group #3", "id", "required"),
        ({"id": ""}, "group #3", "id", "required"),
        ({"id": True}, "group #3", "id", "string id"),
        ({"id": "sg-c", "name": 5}, "group sg-c", "name", "expected a string"),
        ({"id": "sg-c", "description": ["x"]}, "group sg-c", "description", "expected a string"),
        ({"id": "sg-a"}, "group sg-a", "id", "used twice"),
        ("sg-c", "group #3", "", "expected a mapping"),
        ({"id": "sg-c", "rules": ["ingress"]}, "group sg-c rule sg-c/1", "", "expected a mapping"),
    ],
)
def test_invalid_groups(group: Any, obj: str, field: str, fragment: str) -> None:
    problems = problems_of(groups=[group])
    assert [(p.obj, p.field) for p in problems] == [(obj, field)], problems
    assert fragment in problems[0].message


# --- address groups ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ({"ip_version": 4, "ip_set": ["10.0.0.1"]}, [("10.0.0.1", "10.0.0.1")]),
        ({"ip_version": 4, "ip_set": ["10.0.0.0/24"]}, [("10.0.0.0", "10.0.0.255")]),
        ({"ip_version": "4", "ip_set": ["10.0.0.5-10.0.0.9"]}, [("10.0.0.5", "10.0.0.9")]),
        ({"ip_version": 4, "ip_set": [" 10.0.0.5 - 10.0.0.9 "]}, [("10.0.0.5", "10.0.0.9")]),
        ({"ip_version": 4, "ip_set": ["10.0.0.5-10.0.0.5"]}, [("10.0.0.5", "10.0.0.5")]),
        (
            {"ip_version": 6, "ip_set": ["2001:db8::/126", "2001:db8:1::5-2001:db8:1::9"]},
            [("2001:db8::", "2001:db8::3"), ("2001:db8:1::5", "2001:db8:1::9")],
        ),
        ({"ip_version": 4, "ip_set": []}, []),
        ({"ip_version": 4}, []),
        (
            {"ip_version": 4, "ip_set": [f"10.0.0.{i}" for i in range(1, 21)]},
            [(f"10.0.0.{i}", f"10.0.0.{i}") for i in range(1, 21)],
        ),
    ],
)
def test_valid_address_groups(group: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    policy = make_policy(address_groups=[{"id": "ag-x", "name": "x", **group}])
    loaded = policy.address_groups["ag-x"]
    assert loaded.entries == tuple(
        AddressRange(ipaddress.ip_address(a), ipaddress.ip_address(b)) for a, b in expected
    )
    assert loaded.ip_version == int(group["ip_version"])


@pytest.mark.parametrize(
    ("group", "field", "fragment"),
    [
        ({"ip_set": ["10.0.0.0/8"]}, "ip_version", "required"),
        ({"ip_version": 5}, "ip_version", "4 or 6"),
        ({"ip_version": "four"}, "ip_version", "integer"),
        ({"ip_version": True}, "ip_version", "integer"),
        ({"ip_version": 4, "ip_set": ["10.0.0.1/8"]}, "ip_set", "host bits set"),
        ({"ip_version": 4, "ip_set": ["2001:db8::/32"]}, "ip_set", "the group is IPv4"),
        ({"ip_version": 6, "ip_set": ["10.0.0.0/8"]}, "ip_set", "the group is IPv6"),
        ({"ip_version": 4, "ip_set": ["10.0.0.9-10.0.0.5"]}, "ip_set", "first address above"),
        ({"ip_version": 4, "ip_set": ["10.0.0.1-2001:db8::1"]}, "ip_set", "mixes IPv4 and IPv6"),
        ({"ip_version": 4, "ip_set": ["10.0.0.1-10.0.1.0/24"]}, "ip_set", "single address"),
        ({"ip_version": 4, "ip_set": ["office"]}, "ip_set", "not an IP address or CIDR"),
        ({"ip_version": 4, "ip_set": [5]}, "ip_set", "a string"),
        ({"ip_version": 4, "ip_set": "10.0.0.0/8"}, "ip_set", "expected a list"),
        (
            {"ip_version": 4, "ip_set": [f"10.0.0.{i}" for i in range(1, 22)]},
            "ip_set",
            "at most 20",
        ),
        ({"ip_version": 4, "name": ["x"]}, "name", "expected a string"),
    ],
)
def test_invalid_address_groups(group: dict[str, Any], field: str, fragment: str) -> None:
    problems = problems_of(address_groups=[{"id": "ag-x", **group}])
    assert [(p.obj, p.field) for p in problems] == [("address group ag-x", field)], problems
    assert fragment in problems[0].message


def test_address_group_entry_problems_name_the_entry() -> None:
    problems = problems_of(
        address_groups=[{"id": "ag-x", "ip_version": 4, "ip_set": ["10.0.0.0/8", "10.0.0.1/24"]}]
    )
    assert problems[0].message.startswith("entry 2: '10.0.0.1/24' has host bits set")


@pytest.mark.parametrize(
    ("group", "obj", "field"),
    [
        ({"ip_version": 4}, "address group #3", "id"),
        ({"id": "ag4", "ip_version": 4}, "address group ag4", "id"),
        (["ag-x"], "address group #3", ""),
    ],
)
def test_address_group_ids(group: Any, obj: str, field: str) -> None:
    problems = problems_of(address_groups=[group])
    assert [(p.obj, p.field) for p in problems] == [(obj, field)]


def test_a_bad_address_group_does_not_cascade_into_its_rules() -> None:
    problems = problems_of(
        address_groups=[{"id": "ag-bad", "ip_version": 4, "ip_set": ["10.0.0.1/8"]}],
        rules=[{"direction": "ingress", "remote_address_group_id": "ag-bad"}],
    )
    assert [(p.obj, p.field) for p in problems] == [("address group ag-bad", "ip_set")]


# --- instances --------------------------------------------------------------------------


def test_valid_instances() -> None:
    policy = make_policy(
        instances=[
            {"id": "vm-1", "ips": ["10.0.0.1", "2001:db8::1"], "security_groups": ["sg-b", "sg-a"]},
            {"id": 42, "name": "isolated", "ips": ["10.0.0.2"], "security_groups": []},
        ]
    )
    vm1, isolated = policy.instances["vm-1"], policy.instances["42"]
    assert vm1.ips == (ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("2001:db8::1"))
    assert vm1.security_groups == ("sg-b", "sg-a")
    assert isolated.security_groups == () and isolated.name == "isolated"


@pytest.mark.parametrize(
    ("instance", "field", "fragment"),
    [
        ({"ips": [], "security_groups": []}, "ips", "at least one"),
        ({"security_groups": []}, "ips", "at least one"),
        ({"ips": "10.0.0.5", "security_groups": []}, "ips", "expected a list"),
        ({"ips": ["10.0.0.0/24"], "security_groups": []}, "ips", "single address"),
        ({"ips": ["fe80::1%eth0"], "security_groups": []}, "ips", "zone index"),
        ({"ips": ["10.0.0.256"], "security_groups": []}, "ips", "not an IP address"),
        ({"ips": [167772165], "security_groups": []}, "ips", "expected an IP address"),
        ({"ips": ["10.0.0.5", "10.0.0.5"], "security_groups": []}, "ips", "listed twice"),
        ({"ips": ["10.0.0.1"], "security_groups": []}, "ips", "also belongs to instance vm-1"),
        ({"ips": ["10.0.0.5"]}, "security_groups", "required"),
        ({"ips": ["10.0.0.5"], "security_groups": None}, "security_groups", "required"),
        ({"ips": ["10.0.0.5"], "security_groups": "sg-a"}, "security_groups", "expected a list"),
        ({"ips": ["10.0.0.5"], "security_groups": ["sg-zz"]}, "security_groups", "unknown"),
        (
            {"ips": ["10.0.0.5"], "security_groups": ["sg-a", "sg-a"]},
            "security_groups",
            "listed twice",
        ),
        ({"ips": ["10.0.0.5"], "security_groups": [["sg-a"]]}, "security_groups", "string id"),
        ({"ips": ["10.0.0.5"], "security_groups": [], "name": 3}, "name", "expected a string"),
    ],
)
def test_invalid_instances(instance: dict[str, Any], field: str, fragment: str) -> None:
    problems = problems_of(
        instances=[
            {"id": "vm-1", "ips": ["10.0.0.1"], "security_groups": ["sg-a"]},
            {"id": "vm-2", **instance},
        ]
    )
    assert [(p.obj, p.field) for p in problems] == [("instance vm-2", field)], problems
    assert fragment in problems[0].message


@pytest.mark.parametrize(
    ("instance", "obj", "field"),
    [
        ({"ips": ["10.0.0.9"], "security_groups": []}, "instance #2", "id"),
        ({"id": "vm-1", "ips": ["10.0.0.9"], "security_groups": []}, "instance vm-1", "id"),
        ("vm-2", "instance #2", ""),
    ],
)
def test_instance_ids(instance: Any, obj: str, field: str) -> None:
    problems = problems_of(
        instances=[{"id": "vm-1", "ips": ["10.0.0.1"], "security_groups": ["sg-a"]}, instance]
    )
    assert [(p.obj, p.field) for p in problems] == [(obj, field)]


# --- the top level and the file itself --------------------------------------------------


@pytest.mark.parametrize("data", [None, [], "policy", 5])
def test_top_level_must_be_a_mapping(data: object) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_data(data, "p.yaml")
    (problem,) = info.value.problems
    assert problem.file == "p.yaml" and "mapping" in problem.message


@pytest.mark.parametrize(
    "key", ["security_groups", "address_groups", "instances", "security_group_rules"]
)
def test_top_level_lists_must_be_lists(key: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_data({key: {"id": "x"}}, "p.yaml")
    assert [(p.obj, p.field) for p in info.value.problems] == [("", key)]
    assert str(info.value).startswith(f"p.yaml: field '{key}': expected a list")


def test_an_empty_mapping_is_an_empty_policy() -> None:
    policy = load_policy_data({}, "p.yaml")
    assert (policy.groups, policy.address_groups, policy.instances) == ({}, {}, {})


def test_ip_address_groups_is_an_accepted_spelling_but_not_with_address_groups() -> None:
    group = {"id": "ag", "ip_version": 4, "ip_set": ["10.0.0.0/8"]}
    assert "ag" in load_policy_data({"ip_address_groups": [group]}).address_groups
    with pytest.raises(PolicyError) as info:
        load_policy_data({"ip_address_groups": [group], "address_groups": [group]})
    assert [p.field for p in info.value.problems] == ["ip_address_groups"]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def load_error(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return info.value


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert str(load_error(tmp_path / "nope.yaml")) == f"{tmp_path / 'nope.yaml'}: no such file"
    assert "is a directory" in str(load_error(tmp_path))


def test_format_is_decided_by_content(tmp_path: Path) -> None:
    json_text = '{"security_groups": [{"id": "sg", "rules": [{"direction": "egress"}]}]}'
    yaml_text = "security_groups:\n  - id: sg\n    rules: [{direction: egress}]\n"
    loaded = [
        load_policy(write(tmp_path, name, text))
        for name, text in [
            ("a.yaml", json_text),
            ("b.txt", json_text),
            ("c.json", yaml_text),
            ("d", yaml_text),
        ]
    ]
    assert all(p.groups == loaded[0].groups for p in loaded)


def test_json_syntax_errors_have_a_line_and_column(tmp_path: Path) -> None:
    text = '{\n  "security_groups": [\n    {"id": "sg" "rules": []}\n  ]\n}\n'
    for name in ("p.json", "p.txt"):
        message = str(load_error(write(tmp_path, name, text)))
        assert message.startswith(f"{tmp_path / name}: line 3, column 17: invalid JSON")


def test_yaml_flow_mapping_in_a_yaml_file_is_not_mistaken_for_bad_json(tmp_path: Path) -> None:
    text = "{security_groups: [{id: sg, rules: []}]}  # flow style\n"
    assert "sg" in load_policy(write(tmp_path, "p.yaml", text)).groups


def test_yaml_syntax_errors_have_a_line(tmp_path: Path) -> None:
    text = "security_groups:\n  - id: sg\n    rules: [\n"
    message = str(load_error(write(tmp_path, "p.yaml", text)))
    assert message.startswith(f"{tmp_path / 'p.yaml'}: line ") and "invalid YAML" in message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "\ufeffsecurity_groups: [{id: sg}]\n".encode())
    assert "sg" in load_policy(path).groups


@pytest.mark.parametrize(
    "content", [b"", b"  \n\n", b"\x00\x01", b"\xff\xfe\x00a", b"security_groups: [\xe9]\n"]
)
def test_empty_and_binary_files(tmp_path: Path, content: bytes) -> None:
    error = load_error(write(tmp_path, "p.yaml", content))
    (problem,) = error.problems
    assert problem.file == str(tmp_path / "p.yaml")
    assert "empty file" in problem.message or "binary file" in problem.message


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        # YAML 1.1 would read 22:30 as the base-60 number 1350 and 022 as octal 18
        ("multiport: '22'\n        priority: 022", "priority", 22),
        ("multiport: 8_0", "ports", ((80, 80),)),
        ("description: no", "description", "no"),
        ("description: 2026-01-01", "description", "2026-01-01"),
        ("description: on", "description", "on"),
        ("enabled: False", "enabled", False),
    ],
)
def test_yaml_scalars_are_read_the_yaml_1_2_way(
    tmp_path: Path, text: str, field: str, expected: Any
) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "security_groups:\n  - id: sg\n    rules:\n"
        f"      - direction: ingress\n        protocol: tcp\n        {text}\n",
    )
    (rule,) = load_policy(path).groups["sg"].rules
    assert getattr(rule, field) == expected


def test_base_60_port_ranges_are_an_error_not_port_1350(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "security_groups:\n  - id: sg\n    rules:\n"
        "      - {direction: ingress, protocol: tcp, multiport: 22:30}\n",
    )
    (problem,) = load_error(path).problems
    assert problem.field == "multiport" and "'22:30'" in problem.message


# --- the corpus of broken files ---------------------------------------------------------

R = "group sg-a rule"
# file → every problem expected in it: (object, field, message fragment); for files that
# do not parse, object and field are empty and the fragment is the line or the kind.
EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    "bad-yaml.yaml": [("", "", "line 7, column 8: invalid YAML")],
    "bad-json.json": [("", "", "line 4, column 44: invalid JSON: Expecting ',' delimiter")],
    "trailing-comma.json": [("", "", "line 2, column 51: invalid JSON")],
    "duplicate-key.yaml": [("", "", "line 8, column 9: invalid YAML: duplicate key 'priority'")],
    "duplicate-key.json": [("", "", "invalid JSON: duplicate key 'action'")],
    "empty.yaml": [("", "", "empty file")],
    "comments-only.yaml": [("", "", "no content")],
    "binary.yaml": [("", "", "binary file")],
    "latin1.yaml": [("", "", "not UTF-8")],
    "top-level-list.yaml": [("", "", "top level must be a mapping")],
    "unknown-group.yaml": [
        (f"{R} a-1", "remote_group_id", "unknown security group 'sg-nowhere'"),
        ("instance vm-1", "security_groups", "unknown security group 'sg-missing'"),
    ],
    "unknown-address-group.yaml": [
        (f"{R} a-1", "remote_address_group_id", "unknown address group 'ag-nowhere'")
    ],
    "wrong-types.yaml": [
        ("", "address_groups", "expected a list"),
        ("", "security_groups", "expected a list"),
        ("instance #1", "", "expected a mapping"),
    ],
    "wrong-types-rule.yaml": [
        ("group sg-a", "name", "expected a string"),
        (f"{R} sg-a/1", "", "expected a mapping"),
        (f"{R} a-2", "priority", "got a list"),
        (f"{R} a-2", "remote_ip_prefix", "got a mapping"),
        (f"{R} a-2", "enabled", "true or false"),
        ("instance vm-1", "ips", "expected a list"),
        ("instance vm-1", "security_groups", "expected a list"),
    ],
    "priority-out-of-range.yaml": [
        (f"{R} a-1", "priority", "0 is out of range: allowed 1..100"),
        (f"{R} a-2", "priority", "101 is out of range"),
        (f"{R} a-3", "priority", "got true"),
    ],
    "port-out-of-range.yaml": [
        (f"{R} a-1", "multiport", "port 0"),
        (f"{R} a-2", "multiport", "port 65536"),
        (f"{R} a-3", "multiport", "write 80-90"),
        (f"{R} a-4", "port_range_min", "70000 is out of range"),
    ],
    "icmp-out-of-range.yaml": [
        (f"{R} a-1", "icmp_type", "256 is out of range: allowed 0..255"),
        (f"{R} a-2", "icmp_code", "-1 is out of range"),
    ],
    "angle-brackets.yaml": [(f"{R} a-1", "description", "'<' and '>' are not allowed")],
    "description-too-long.yaml": [(f"{R} a-1", "description", "256 characters")],
    "too-many-port-groups.yaml": [(f"{R} a-1", "multiport", "21 comma groups: at most 20")],
    "v6-prefix-in-v4-rule.yaml": [(f"{R} a-1", "remote_ip_prefix", "ethertype is IPv4")],
    "host-bits-rule.yaml": [(f"{R} a-1", "remote_ip_prefix", "did you mean '10.0.0.0/24'")],
    "host-bits-address-group.yaml": [
        ("address group ag-a", "ip_set", "entry 2: '198.51.100.7/24' has host bits set")
    ],
    "duplicate-instance-ip.yaml": [
        ("instance vm-2", "ips", "10.0.0.5 also belongs to instance vm-1")
    ],
    "both-rule-lists.yaml": [("group sg-a", "security_group_rules", "use one")],
    "icmp-name-and-code.yaml": [(f"{R} a-1", "icmp_code", "already fixes the code (3)")],
    "ports-on-icmp.yaml": [(f"{R} a-1", "multiport", "only with protocol tcp or udp")],
    "ports-on-all-protocols.yaml": [(f"{R} a-1", "multiport", "protocol is all")],
    "icmp-code-without-type.yaml": [(f"{R} a-1", "icmp_code", "a code needs a type")],
    "icmp-in-ipv6-rule.yaml": [
        (f"{R} a-1", "protocol", "needs ethertype IPv4"),
        (f"{R} a-2", "protocol", "needs ethertype IPv6"),
    ],
    "icmpv6-type-name.yaml": [(f"{R} a-1", "icmp_type", "names exist for icmp only")],
    "multiport-and-port-range.yaml": [(f"{R} a-1", "port_range_min", "use multiport alone")],
    "bad-words.yaml": [
        (f"{R} a-1", "direction", "'sideways'"),
        (f"{R} a-2", "action", "'reject'"),
        (f"{R} a-3", "ethertype", "'IPv5'"),
        (f"{R} a-4", "protocol", "'sctpish'"),
        (f"{R} a-5", "direction", "required"),
    ],
    "two-remotes.yaml": [(f"{R} a-1", "remote_group_id", "at most one remote_*")],
    "address-group-version.yaml": [
        ("address group ag-v6", "ip_set", "the group is IPv6"),
        (f"{R} a-1", "remote_address_group_id", "must match"),
    ],
    "address-group-entries.yaml": [
        ("address group ag-big", "ip_set", "21 entries"),
        ("address group ag-reversed", "ip_set", "first address above"),
        ("address group ag-noversion", "ip_version", "required"),
    ],
    "duplicate-ids.yaml": [
        ("address group ag-a", "id", "used twice"),
        ("group sg-a", "id", "groups #1 and #3"),
        ("group sg-b rule r-1", "id", "rule #1 of group sg-a"),
        ("instance vm-1", "id", "used twice"),
    ],
    "defaulted-rule-id-clash.yaml": [(f"{R} sg-a/1", "id", "(its default id)")],
    "instance-problems.yaml": [
        ("instance vm-1", "ips", "at least one"),
        ("instance vm-2", "security_groups", "listed twice"),
        ("instance vm-3", "ips", "'10.0.0.300' is not an IP address"),
        ("instance vm-4", "security_groups", "required"),
    ],
    "flat-rule-problems.yaml": [
        ("rule #2 of security_group_rules", "security_group_id", "required"),
        ("rule #3 of security_group_rules", "security_group_id", "unknown security group 'sg-zzz'"),
    ],
    "enabled-not-bool.yaml": [(f"{R} a-1", "enabled", "got 'yes'")],
    "bad-protocol-number.yaml": [(f"{R} a-1", "protocol", "1..255")],
}


def test_every_broken_file_has_expectations() -> None:
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file(name: str) -> None:
    path = BROKEN / name
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    problems = info.value.problems
    assert [(p.obj, p.field) for p in problems] == [(o, f) for o, f, _ in EXPECTED[name]]
    message = str(info.value)
    assert len(message.splitlines()) == len(problems)
    for problem, (obj, field, fragment), line in zip(
        problems, EXPECTED[name], message.splitlines(), strict=True
    ):
        assert problem.file == str(path)
        assert fragment in problem.message, problem
        assert line.startswith(f"{path}: ")
        assert obj in line and (not field or f"field '{field}'" in line)


# --- never a traceback: random damage to a valid policy ---------------------------------

JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            " ",
            "tcp",
            "icmp",
            "Echo",
            "10.0.0.1/24",
            "::/0",
            "1-65535",
            "22:30",
            "sg-web",
            "ag-office",
            "IPv6",
            "deny",
            "0",
            "<",
            "a-b",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested structure that a value could be replaced or added."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths(value, (*prefix, key)))
        found.extend((*prefix, key) for key in ("id", "priority", "multiport", "ips", "extra"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(paths(value, (*prefix, index)))
    return found


WEB_DB = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "examples" / "web-db.yaml").read_text()
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_policies_give_problems_not_tracebacks(data: st.DataObject) -> None:
    policy = copy.deepcopy(WEB_DB)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(policy)))
        value = data.draw(JUNK)
        if not path:
            policy = value
            continue
        parent = policy
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        loaded = load_policy_data(policy, "fuzz.yaml")
    except PolicyError as error:
        assert error.problems
        assert all(p.file == "fuzz.yaml" and p.message for p in error.problems)
    else:
        assert isinstance(loaded, Policy)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_give_a_policy_or_problems(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.yaml"
        path.write_bytes(content)
        try:
            load_policy(path)
        except PolicyError as error:
            assert all(p.file == str(path) for p in error.problems)
