"""The example policies, the two shapes (nested and the API's flat export), and warnings."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from classifier.errors import PolicyError
from classifier.policy import AddressRange, Policy, load_policy, load_policy_data, policy_summary

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def model(policy: Policy) -> tuple[Any, ...]:
    """What a policy means, without where it came from."""
    return policy.groups, policy.address_groups, policy.instances


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# --- the examples -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "groups", "rules", "instances", "address_groups"),
    [
        ("web-db.yaml", 3, 11, 3, 1),
        ("default-group.yaml", 1, 9, 1, 0),
        ("ipv6.yaml", 3, 10, 2, 1),
        ("api-export.json", 2, 6, 2, 1),
        ("lint-demo.yaml", 3, 12, 3, 3),
    ],
)
def test_examples_load(
    name: str, groups: int, rules: int, instances: int, address_groups: int
) -> None:
    policy = load_policy(EXAMPLES / name)
    assert policy_summary(policy) == (groups, rules, instances)
    assert len(policy.address_groups) == address_groups
    assert policy.warnings == ()
    assert policy.source == str(EXAMPLES / name)


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json")) == [
        "api-export.json",
        "default-group.yaml",
        "ipv6.yaml",
        "lint-demo.yaml",
        "web-db.yaml",
    ]


def test_web_db_is_the_documented_topology() -> None:
    policy = load_policy(EXAMPLES / "web-db.yaml")
    office = policy.address_groups["ag-office"]
    assert office.ip_version == 4 and office.entries == (
        AddressRange(ip("198.51.100.0"), ip("198.51.100.255")),
        AddressRange(ip("192.0.2.10"), ip("192.0.2.20")),
    )
    assert list(policy.groups) == ["sg-web", "sg-db", "sg-base"]
    rules = {rule.id: rule for rule in policy.rules()}
    summary = {
        rid: (
            r.group_id,
            r.direction,
            r.action,
            r.priority,
            r.ip_version,
            r.protocol_text,
            r.ports_text,
            r.icmp_type,
            r.icmp_code,
            tuple(map(str, r.remote_prefixes)),
            r.remote_group_id,
            r.remote_address_group_id,
        )
        for rid, r in rules.items()
    }
    v4_any, v6_any = ("0.0.0.0/0",), ("::/0",)
    assert summary == {
        "web-http": (
            "sg-web",
            "ingress",
            "allow",
            1,
            4,
            "tcp",
            "80,443",
            None,
            None,
            v4_any,
            None,
            None,
        ),
        "web-ssh": (
            "sg-web",
            "ingress",
            "allow",
            1,
            4,
            "tcp",
            "22",
            None,
            None,
            (),
            None,
            "ag-office",
        ),
        "web-icmp": (
            "sg-web",
            "ingress",
            "allow",
            1,
            4,
            "icmp",
            "all",
            None,
            None,
            v4_any,
            None,
            None,
        ),
        "web-v6": (
            "sg-web",
            "ingress",
            "allow",
            1,
            6,
            "tcp",
            "80,443",
            None,
            None,
            v6_any,
            None,
            None,
        ),
        "web-out": (
            "sg-web",
            "egress",
            "allow",
            1,
            4,
            "all",
            "all",
            None,
            None,
            v4_any,
            None,
            None,
        ),
        "web-out6": (
            "sg-web",
            "egress",
            "allow",
            1,
            6,
            "all",
            "all",
            None,
            None,
            v6_any,
            None,
            None,
        ),
        "db-pg": ("sg-db", "ingress", "allow", 1, 4, "tcp", "5432", None, None, (), "sg-web", None),
        "db-deny-scan": (
            "sg-db",
            "ingress",
            "deny",
            50,
            4,
            "tcp",
            "all",
            None,
            None,
            v4_any,
            None,
            None,
        ),
        "db-out": (
            "sg-db",
            "egress",
            "allow",
            1,
            4,
            "all",
            "all",
            None,
            None,
            ("10.0.0.0/8",),
            None,
            None,
        ),
        "base-ping": (
            "sg-base",
            "ingress",
            "allow",
            1,
            4,
            "icmp",
            "all",
            8,
            0,
            ("10.0.0.0/8",),
            None,
            None,
        ),
        "base-deny-telnet": (
            "sg-base",
            "ingress",
            "deny",
            10,
            4,
            "tcp",
            "23",
            None,
            None,
            v4_any,
            None,
            None,
        ),
    }
    assert {i.id: (i.ips, i.security_groups) for i in policy.instances.values()} == {
        "web-1": ((ip("10.0.1.10"), ip("2001:db8:1::10")), ("sg-web", "sg-base")),
        "web-2": ((ip("10.0.1.11"),), ("sg-web", "sg-base")),
        "db-1": ((ip("10.0.2.20"),), ("sg-db", "sg-base")),
    }
    assert policy.group_members("sg-web", 4) == {ip("10.0.1.10"), ip("10.0.1.11")}


def test_default_group_is_the_clouds_default() -> None:
    policy = load_policy(EXAMPLES / "default-group.yaml")
    (group,) = policy.groups.values()
    assert [r.id for r in group.rules] == [f"default/{n}" for n in range(1, 10)]
    assert [r.position for r in group.rules] == list(range(1, 10))
    ingress_v4 = [r for r in group.rules if r.direction == "ingress" and r.remote_prefixes]
    assert sorted(r.ports_text for r in ingress_v4 if r.protocol == 6) == [
        "22",
        "3389",
        "443",
        "80",
    ]
    assert [r.protocol_text for r in ingress_v4 if r.protocol != 6] == ["icmp"]
    own = [(r.ip_version, r.protocol) for r in group.rules if r.remote_group_id == "default"]
    assert own == [(4, None), (6, None)]
    egress = [
        (r.ip_version, str(r.remote_prefixes[0])) for r in group.rules if r.direction == "egress"
    ]
    assert egress == [(4, "0.0.0.0/0"), (6, "::/0")]
    assert all(r.action == "allow" and r.priority == 1 for r in group.rules)
    (instance,) = policy.instances.values()
    assert instance.ips == (ip("10.0.0.5"),) and instance.security_groups == ("default",)


def test_ipv6_example() -> None:
    policy = load_policy(EXAMPLES / "ipv6.yaml")
    assert all(address.version == 6 for i in policy.instances.values() for address in i.ips)
    assert all(rule.ip_version == 6 for rule in policy.rules())
    assert {r.icmp_type for r in policy.rules() if r.protocol == 58} == {128, 133, 134, 135, 136}
    admins = policy.address_groups["ag-admins"]
    assert admins.ip_version == 6 and ip("2001:db8:bb::1a") in admins
    assert ip("2001:db8:bb::20") not in admins
    (comma_rule,) = [r for r in policy.rules() if r.id == "v6-nd-ns"]
    assert len(comma_rule.remote_prefixes) == 2


# --- the flat API shape -----------------------------------------------------------------


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """The nested shape of a flat export: each group lists its own rules."""
    nested = copy.deepcopy(flat)
    rules = nested.pop("security_group_rules")
    for group in nested["security_groups"]:
        group["rules"] = [rule for rule in rules if rule["security_group_id"] == group["id"]]
    return nested


def test_api_export_carries_the_api_fields_and_loads_like_its_nested_form() -> None:
    flat = json.loads((EXAMPLES / "api-export.json").read_text())
    first_rule = flat["security_group_rules"][0]
    assert {"project_id", "created_at", "updated_at", "security_group_id"} <= set(first_rule)
    assert {"project_id", "created_at", "tags"} <= set(flat["security_groups"][0])
    loaded_flat = load_policy(EXAMPLES / "api-export.json")
    loaded_nested = load_policy_data(nest(flat), "nested")
    assert model(loaded_flat) == model(loaded_nested)
    assert loaded_nested.warnings == ()


def test_flat_rule_ids_default_to_the_position_among_the_groups_rules() -> None:
    flat = {
        "security_groups": [{"id": "a"}, {"id": "b"}],
        "security_group_rules": [
            {"security_group_id": "b", "direction": "ingress", "protocol": "tcp"},
            {"security_group_id": "a", "direction": "egress"},
            {"security_group_id": "b", "direction": "ingress", "protocol": "udp"},
            {"security_group_id": "a", "direction": "ingress", "id": "named"},
            {"security_group_id": "b", "direction": "egress"},
        ],
        "instances": [{"id": "vm", "ips": ["10.0.0.1"], "security_groups": ["a", "b"]}],
    }
    loaded = load_policy_data(flat, "flat")
    assert [(r.id, r.position) for r in loaded.groups["a"].rules] == [("a/1", 1), ("named", 2)]
    assert [r.id for r in loaded.groups["b"].rules] == ["b/1", "b/2", "b/3"]
    assert list(loaded.groups) == ["a", "b"]
    assert model(loaded) == model(load_policy_data(nest(flat), "nested"))


def test_yaml_and_json_spellings_load_equal(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "web-db.yaml").read_text())
    path = tmp_path / "web-db.json"
    path.write_text(json.dumps(data, indent=2))
    assert model(load_policy(path)) == model(load_policy(EXAMPLES / "web-db.yaml"))


def test_a_group_takes_its_rules_from_one_place() -> None:
    data = {
        "security_groups": [{"id": "a", "rules": [{"direction": "ingress"}]}],
        "security_group_rules": [{"security_group_id": "a", "direction": "egress"}],
    }
    with pytest.raises(PolicyError) as info:
        load_policy_data(data, "p.json")
    (problem,) = info.value.problems
    assert (problem.obj, problem.field) == ("rule #1 of security_group_rules", "security_group_id")


def test_flat_rule_problems_name_the_group_and_the_list_position() -> None:
    data = {
        "security_groups": [{"id": "a"}],
        "security_group_rules": [{"security_group_id": "a", "direction": "in"}],
    }
    with pytest.raises(PolicyError) as info:
        load_policy_data(data, "p.json")
    (problem,) = info.value.problems
    assert problem.obj == "group a rule a/1 (security_group_rules #1)"


def test_load_policy_takes_str_and_path() -> None:
    as_str = load_policy(str(EXAMPLES / "web-db.yaml"))
    as_path = load_policy(EXAMPLES / "web-db.yaml")
    assert model(as_str) == model(as_path) and as_str.source == as_path.source


def test_policy_summary_counts_comma_list_rules_once() -> None:
    policy = load_policy_data(
        {
            "security_groups": [
                {
                    "id": "a",
                    "rules": [
                        {
                            "direction": "ingress",
                            "remote_ip_prefix": "10.0.0.0/8, 192.168.0.0/16, 172.16.0.1",
                        },
                        {"direction": "egress"},
                    ],
                }
            ],
        }
    )
    assert policy_summary(policy) == (1, 2, 0)
    assert len(policy.groups["a"].rules[0].remote_prefixes) == 3


# --- warnings ---------------------------------------------------------------------------


def warnings_of(data: dict[str, Any]) -> tuple[str, ...]:
    return load_policy_data(data, "w.yaml").warnings


def one_group(*rules: dict[str, Any], **group: Any) -> dict[str, Any]:
    return {"security_groups": [{"id": "sg", "rules": list(rules), **group}]}


def test_unknown_fields_warn_with_the_object_and_a_suggestion() -> None:
    data = {
        "address_groups": [{"id": "ag", "ip_version": 4, "ip_sets": ["10.0.0.0/8"]}],
        "security_groups": [
            {
                "id": "sg",
                "nmae": "typo",
                "rules": [{"direction": "ingress", "protocl": "tcp", "colour": "blue"}],
            }
        ],
        "instances": [{"id": "vm", "ips": ["10.0.0.1"], "security_groups": [], "ip": "x"}],
        "instance": [],
    }
    assert warnings_of(data) == (
        "w.yaml: top level: unknown field 'instance' ignored (did you mean 'instances'?)",
        "w.yaml: address group ag: unknown field 'ip_sets' ignored (did you mean 'ip_set'?)",
        "w.yaml: group sg: unknown field 'nmae' ignored (did you mean 'name'?)",
        "w.yaml: group sg rule sg/1: unknown field 'protocl' ignored (did you mean 'protocol'?)",
        "w.yaml: group sg rule sg/1: unknown field 'colour' ignored",
        "w.yaml: instance vm: unknown field 'ip' ignored (did you mean 'ips'?)",
    )


def test_a_misspelt_field_is_not_applied() -> None:
    data = one_group({"direction": "ingress", "protocl": "tcp"})
    (rule,) = load_policy_data(data).groups["sg"].rules
    assert rule.protocol is None


API_NOISE = {
    "project_id": "p",
    "tenant_id": "t",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "revision_number": 3,
    "tags": [],
    "enterprise_project_id": "0",
}


def test_api_fields_load_silently() -> None:
    data = {
        "request_id": "r",
        "page_info": {},
        "address_groups": [
            {
                "id": "ag",
                "ip_version": 4,
                "ip_set": [],
                "max_capacity": 20,
                "status": "NORMAL",
                "status_message": "",
                "ip_extra_set": [],
                **API_NOISE,
            }
        ],
        "security_groups": [
            {
                "id": "sg",
                "stateful": True,
                "shared": False,
                **API_NOISE,
                "security_group_rules": [
                    {
                        "id": "r1",
                        "security_group_id": "sg",
                        "direction": "ingress",
                        "normalized_cidr": None,
                        "belongs_to_default_sg": False,
                        **API_NOISE,
                    }
                ],
            }
        ],
        "instances": [
            {
                "id": "vm",
                "ips": ["10.0.0.1"],
                "security_groups": ["sg"],
                "description": "the vm",
                **API_NOISE,
            }
        ],
    }
    assert warnings_of(data) == ()


def test_stateless_groups_warn() -> None:
    (warning,) = warnings_of(one_group(stateful=False))
    assert warning.startswith("w.yaml: group sg: stateful: false ignored")


def test_duplicate_rules_warn() -> None:
    rule = {
        "direction": "ingress",
        "protocol": "tcp",
        "multiport": "22",
        "remote_ip_prefix": "10.0.0.0/8",
    }
    same = {**rule, "protocol": "TCP", "multiport": "22-22", "description": "again"}
    (warning,) = warnings_of(one_group(rule, same))
    assert warning.startswith("w.yaml: group sg: rules sg/1 and sg/2 are duplicates")


@pytest.mark.parametrize(
    "change",
    [
        {"priority": 2},
        {"multiport": "23"},
        {"remote_ip_prefix": "10.0.0.0/9"},
        {"direction": "egress"},
        {"enabled": False},
        {"protocol": "udp"},
    ],
)
def test_rules_that_differ_in_a_matching_field_are_not_duplicates(change: dict[str, Any]) -> None:
    rule = {
        "direction": "ingress",
        "protocol": "tcp",
        "multiport": "22",
        "remote_ip_prefix": "10.0.0.0/8",
    }
    assert warnings_of(one_group(rule, {**rule, **change})) == ()


def test_duplicates_in_different_groups_do_not_warn() -> None:
    rule = {"direction": "ingress"}
    data = {"security_groups": [{"id": "a", "rules": [rule]}, {"id": "b", "rules": [rule]}]}
    assert warnings_of(data) == ()


def test_comma_list_rules_duplicate_per_entry() -> None:
    wide = {"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8, 192.168.0.0/16"}
    narrow = {"direction": "ingress", "remote_ip_prefix": "192.168.0.0/16"}
    (warning,) = warnings_of(one_group(wide, narrow))
    assert "rules sg/1 and sg/2 are duplicates" in warning


def test_a_prefix_listed_twice_in_a_comma_list_warns() -> None:
    data = one_group({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8, 10.0.0.0/8"})
    (warning,) = warnings_of(data)
    assert warning == "w.yaml: group sg rule sg/1: remote_ip_prefix lists 10.0.0.0/8 twice"
    assert len(load_policy_data(data).groups["sg"].rules[0].remote_prefixes) == 1


def test_opposite_action_twins_warn() -> None:
    allow = {"id": "let-in", "direction": "ingress", "protocol": "tcp", "multiport": "22"}
    deny = {**allow, "id": "keep-out", "action": "deny"}
    (warning,) = warnings_of(one_group(allow, deny))
    assert warning.startswith(
        "w.yaml: group sg: rules let-in and keep-out differ only in their action"
    )
    assert warning.endswith("keep-out always wins")


def test_opposite_actions_at_different_priorities_do_not_warn() -> None:
    allow = {"direction": "ingress", "protocol": "tcp", "multiport": "22", "priority": 1}
    deny = {**allow, "action": "deny", "priority": 2}
    assert warnings_of(one_group(allow, deny)) == ()


def test_warnings_do_not_hide_errors() -> None:
    data = one_group({"direction": "ingress", "colour": "blue", "priority": 0})
    with pytest.raises(PolicyError) as info:
        load_policy_data(data, "w.yaml")
    assert [p.field for p in info.value.problems] == ["priority"]


def test_an_empty_nested_list_does_not_block_the_flat_rules() -> None:
    data = {
        "security_groups": [{"id": "a", "security_group_rules": []}],
        "security_group_rules": [{"security_group_id": "a", "direction": "egress"}],
    }
    assert [r.id for r in load_policy_data(data).groups["a"].rules] == ["a/1"]
