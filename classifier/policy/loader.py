"""Policy files -> the validated model of `classifier.policy.model`.

The file's syntax is `classifier.policy.syntax`'s, the field parsers are
`classifier.policy.fields`; this module walks the data. Two shapes load to the same
objects: the nested one (each security group lists its `rules` or `security_group_rules`) and
the API's flat export (groups without rule lists, next to a top-level `security_group_rules`
list whose rules carry `security_group_id`), so a dump of the cloud's list calls loads
unchanged.

Design:
- The loader never stops at the first problem. Every check records a `Problem` (file, object,
  field, message) and the walk goes on with the next field; an object with a problem is simply
  left out of the result, and at the end either there were no problems and the `Policy` is
  returned, or `PolicyError(problems)` is raised with all of them. Cross-reference checks use
  the ids of *every* object written, valid or not, so one bad address group does not cascade
  into "unknown address group" on each rule that names it.
- Field parsers (`classifier.policy.fields`) either return the normal form or raise
  `Invalid(message)`; the message says what was found and what is allowed, the walk adds
  where.
- Warnings (unknown fields, duplicate rules, rules that differ only by action) load and are
  returned in `Policy.warnings`, one line each, naming the file and the object.

The choices made where the spec is silent are the user's reference in docs/policy-format.md;
keep the two in step.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from classifier.codes import ICMP_PROTOCOLS, RULE_PORT_PROTOCOLS
from classifier.errors import PolicyError, Problem
from classifier.policy.fields import (
    ADDRESS_GROUP_FIELDS,
    ADDRESS_GROUP_IGNORED,
    DIRECTIONS,
    ETHERTYPES,
    GROUP_FIELDS,
    GROUP_IGNORED,
    ICMP_TYPE_NAMES,
    INSTANCE_FIELDS,
    INSTANCE_IGNORED,
    MAX_ADDRESS_GROUP_ENTRIES,
    RULE_FIELDS,
    RULE_IGNORED,
    TOP_FIELDS,
    TOP_IGNORED,
    Invalid,
    absent,
    icmp_name,
    merge_ports,
    parse_action,
    parse_address,
    parse_description,
    parse_entry,
    parse_ident,
    parse_integer,
    parse_multiport,
    parse_network,
    parse_priority,
    parse_protocol,
    parse_text,
    parse_word,
    show,
)
from classifier.policy.model import (
    Action,
    AddressGroup,
    Direction,
    Instance,
    IPAddress,
    IPNetwork,
    Policy,
    Rule,
    SecurityGroup,
)
from classifier.policy.syntax import MAX_FILE_BYTES, parse

__all__ = ["load_policy", "load_policy_data", "policy_summary"]

T = TypeVar("T")

# --- public API --------------------------------------------------------------------------


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, parse and validate one policy file; PolicyError lists every problem found."""
    source = str(path)
    try:
        raw = _read_policy(path, source)
    except FileNotFoundError:
        raise PolicyError([Problem(source, "", "", "no such file")]) from None
    except IsADirectoryError:
        raise PolicyError([Problem(source, "", "", "is a directory, not a policy file")]) from None
    except OSError as exc:
        raise PolicyError([Problem(source, "", "", f"cannot read: {exc.strerror}")]) from None
    data = parse(raw, source, Path(path).suffix.lower())
    return load_policy_data(data, source)


def _read_policy(path: str | os.PathLike[str], source: str) -> bytes:
    """The file's bytes: a regular file only (a FIFO or device could block or never end),
    and no more than the syntax layer's limit (read one byte past it to know)."""
    if os.path.exists(path) and not os.path.isdir(path) and not stat.S_ISREG(os.stat(path).st_mode):
        message = "not a regular file (a pipe or device): give a policy file"
        raise PolicyError([Problem(source, "", "", message)])
    with open(path, "rb", buffering=0) as f:
        return f.read(MAX_FILE_BYTES + 1)


def load_policy_data(data: object, source: str = "<data>") -> Policy:
    """Validate already-parsed data (the dict a YAML/JSON file would give)."""
    return _Loader(source).load(data)


def policy_summary(policy: Policy) -> tuple[int, int, int]:
    """(groups, rules as written, instances): a comma-list rule counts once (spec section 6)."""
    return len(policy.groups), policy.rule_count, len(policy.instances)


# --- the walk over the data --------------------------------------------------------------


@dataclass
class _GroupHead:
    """A security group's own fields, read before its rules (which need every group id)."""

    name: str
    description: str
    index: int  # 1-based position in security_groups, for messages
    ok: bool  # no problem in the group's own fields


@dataclass
class _RuleSource:
    """One rule as written: where it came from (for ids, positions and messages)."""

    raw: object
    group_id: str
    position: int
    label_extra: str = ""  # the flat list's index, to find the rule in a long export


class _Loader:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        # object -> the unknown fields written in it, with their "did you mean" hints: a
        # problem of that object is reported with them (a typo often causes the error)
        self.unknown: dict[str, list[str]] = {}

    # bookkeeping

    def problem(self, obj: str, field: str, message: str) -> None:
        self.problems.append(Problem(self.source, obj, field, message))

    def warn(self, obj: str, message: str) -> None:
        self.warnings.append(
            f"{self.source}: {obj}: {message}" if obj else f"{self.source}: {message}"
        )

    def check(
        self, obj: str, field: str, parse: Callable[..., T], *args: Any
    ) -> tuple[bool, T | None]:
        """Run one field parser; (True, value) or record its problem and return (False, None)."""
        try:
            return True, parse(*args)
        except Invalid as exc:
            self.problem(obj, field, str(exc))
            return False, None

    def fields(
        self, obj: str, raw: Mapping[Any, Any], known: frozenset[str], ignored: frozenset[str]
    ) -> None:
        """Warn about every field neither meaningful here nor a known API field."""
        for key in raw:
            name = str(key)
            if name in known or name in ignored:
                continue
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.warn(obj, f"unknown field '{name}' ignored{hint}")
            self.unknown.setdefault(obj, []).append(
                f"'{name}'" + (f": did you mean '{close[0]}'?" if close else "")
            )

    def fail(self) -> PolicyError:
        """The error of every problem found, each with the unknown fields of its object (the
        hint stays next to the error it may explain), and the warnings beside it."""
        problems = []
        for problem in self.problems:
            unknown = self.unknown.get(problem.obj)
            if unknown:
                fields = "; ".join(unknown)
                plural = "s" if len(unknown) > 1 else ""
                problem = Problem(
                    problem.file,
                    problem.obj,
                    problem.field,
                    f"{problem.message} (unknown field{plural} ignored here: {fields})",
                )
            problems.append(problem)
        return PolicyError(problems, warnings=self.warnings)

    def items(self, obj: str, field: str, value: object, what: str) -> list[Any]:
        """A list field: absent = empty; anything but a list is a problem."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(obj, field, f"expected a list of {what}, got {show(value)}")
            return []
        return value

    # the whole policy

    def load(self, data: object) -> Policy:
        if data is None:
            self.problem(
                "",
                "",
                "no content (only comments or null): expected a mapping with "
                "security_groups, address_groups and instances",
            )
            raise self.fail()
        if not isinstance(data, Mapping):
            self.problem(
                "",
                "",
                f"the top level must be a mapping with security_groups, "
                f"address_groups and instances; got {show(data)}",
            )
            raise self.fail()
        self.fields("top level", data, TOP_FIELDS, TOP_IGNORED)

        ag_key = "address_groups"
        if "address_groups" in data and "ip_address_groups" in data:
            self.problem(
                "",
                "ip_address_groups",
                "both 'address_groups' and 'ip_address_groups' given: use one",
            )
        elif "ip_address_groups" in data:
            ag_key = "ip_address_groups"
        raw_ags = self.items("", ag_key, data.get(ag_key), "address groups (mappings)")
        raw_groups = self.items(
            "", "security_groups", data.get("security_groups"), "security groups (mappings)"
        )
        raw_flat = self.items(
            "",
            "security_group_rules",
            data.get("security_group_rules"),
            "rules (mappings with security_group_id)",
        )
        raw_instances = self.items("", "instances", data.get("instances"), "instances (mappings)")

        address_groups, ag_versions = self.address_groups(raw_ags)
        group_heads, rule_sources = self.group_heads(raw_groups)
        self.flat_rules(raw_flat, group_heads, rule_sources)
        groups = self.groups(group_heads, rule_sources, ag_versions)
        instances = self.instances(raw_instances, set(group_heads))

        if self.problems:
            raise self.fail()
        return Policy(
            groups=groups,
            address_groups=address_groups,
            instances=instances,
            source=self.source,
            warnings=tuple(self.warnings),
        )

    # address groups

    def address_groups(
        self, raws: list[Any]
    ) -> tuple[dict[str, AddressGroup], dict[str, int | None]]:
        result: dict[str, AddressGroup] = {}
        versions: dict[str, int | None] = {}  # every id written, version None when invalid
        for index, raw in enumerate(raws, 1):
            obj = f"address group #{index}"
            if not isinstance(raw, Mapping):
                self.problem(
                    obj, "", f"expected a mapping (id, ip_version, ip_set), got {show(raw)}"
                )
                continue
            before = len(self.problems)
            ok, ident = self.check(obj, "id", parse_ident, raw.get("id"))
            if ok and ident is not None:
                obj = f"address group {ident}"
                if ident in versions:
                    self.problem(
                        obj, "id", f"address group id {ident!r} is used twice: ids must be unique"
                    )
            self.fields(obj, raw, ADDRESS_GROUP_FIELDS, ADDRESS_GROUP_IGNORED)
            name = self.optional_text(obj, raw, "name")
            self.optional_text(obj, raw, "description")
            version: int | None = None
            if absent(raw.get("ip_version")):
                self.problem(obj, "ip_version", "required: 4 or 6")
            else:
                ok, value = self.check(
                    obj, "ip_version", parse_integer, raw["ip_version"], 4, 6, "an IP version"
                )
                if ok and value not in (4, 6):
                    self.problem(obj, "ip_version", f"got {value}: allowed 4 or 6")
                elif ok:
                    version = value
            if ident is not None and ident not in versions:
                versions[ident] = version
            entries = self.items(obj, "ip_set", raw.get("ip_set"), "IPs, CIDRs or ranges")
            if len(entries) > MAX_ADDRESS_GROUP_ENTRIES:
                self.problem(
                    obj,
                    "ip_set",
                    f"{len(entries)} entries: at most {MAX_ADDRESS_GROUP_ENTRIES} allowed",
                )
            ranges = []
            for position, entry in enumerate(entries, 1):
                ok, parsed = self.check(obj, "ip_set", parse_entry, entry, version)
                if ok and parsed is not None:
                    ranges.append(parsed)
                elif not ok:
                    last = self.problems[-1]
                    self.problems[-1] = Problem(
                        last.file, last.obj, last.field, f"entry {position}: {last.message}"
                    )
            if len(self.problems) == before and ident is not None and version is not None:
                result[ident] = AddressGroup(ident, version, tuple(ranges), name or "")
        return result, versions

    # security groups: heads first (ids are needed by remote_group_id), rules after

    def group_heads(
        self, raws: list[Any]
    ) -> tuple[dict[str, _GroupHead], dict[str, list[_RuleSource] | None]]:
        """id → the group's own fields; id → its nested rules (None = none given)."""
        heads: dict[str, _GroupHead] = {}
        rules: dict[str, list[_RuleSource] | None] = {}
        for index, raw in enumerate(raws, 1):
            obj = f"group #{index}"
            if not isinstance(raw, Mapping):
                self.problem(obj, "", f"expected a mapping (id, name, rules), got {show(raw)}")
                continue
            before = len(self.problems)
            ok, ident = self.check(obj, "id", parse_ident, raw.get("id"))
            if ok and ident is not None:
                obj = f"group {ident}"
            self.fields(obj, raw, GROUP_FIELDS, GROUP_IGNORED)
            name = self.optional_text(obj, raw, "name")
            description = self.optional_text(obj, raw, "description")
            if raw.get("stateful") is False:
                self.warn(obj, "stateful: false ignored: every group is evaluated as stateful")
            if "rules" in raw and "security_group_rules" in raw:
                self.problem(
                    obj,
                    "security_group_rules",
                    "both 'rules' and "
                    "'security_group_rules' given: they are the same list, use one",
                )
                listed: list[Any] | None = []
            elif "rules" in raw or "security_group_rules" in raw:
                key = "rules" if "rules" in raw else "security_group_rules"
                listed = self.items(obj, key, raw[key], "rules (mappings)")
            else:
                listed = None
            if ident is None:
                continue
            if ident in heads:
                self.problem(
                    obj,
                    "id",
                    f"group id {ident!r} is used twice (groups "
                    f"#{heads[ident].index} and #{index}): ids must be unique",
                )
                continue
            heads[ident] = _GroupHead(
                name or "", description or "", index, len(self.problems) == before
            )
            # An empty or null list contributes nothing: such a group may still take its
            # rules from the top-level list (an API dump of groups can carry `[]`).
            rules[ident] = (
                None
                if not listed
                else [_RuleSource(item, ident, position) for position, item in enumerate(listed, 1)]
            )
        return heads, rules

    def flat_rules(
        self,
        raws: list[Any],
        heads: Mapping[str, _GroupHead],
        sources: dict[str, list[_RuleSource] | None],
    ) -> None:
        """The API's flat shape: each rule names its group in security_group_id."""
        flat: dict[str, list[_RuleSource]] = {}
        for index, raw in enumerate(raws, 1):
            obj = f"rule #{index} of security_group_rules"
            if not isinstance(raw, Mapping):
                self.problem(obj, "", f"expected a mapping (a rule), got {show(raw)}")
                continue
            if absent(raw.get("security_group_id")):
                self.problem(
                    obj,
                    "security_group_id",
                    "required in the top-level "
                    "security_group_rules list: the id of the rule's group",
                )
                continue
            ok, ident = self.check(obj, "security_group_id", parse_ident, raw["security_group_id"])
            if not ok or ident is None:
                continue
            if ident not in heads:
                self.problem(
                    obj,
                    "security_group_id",
                    f"unknown security group {ident!r}: list it under security_groups",
                )
                continue
            if sources.get(ident) is not None:
                self.problem(
                    obj,
                    "security_group_id",
                    f"group {ident} lists its rules itself; "
                    f"a group's rules come either nested or from the top-level list",
                )
                continue
            mine = flat.setdefault(ident, [])
            mine.append(_RuleSource(raw, ident, len(mine) + 1, f"security_group_rules #{index}"))
        for ident, mine in flat.items():
            sources[ident] = mine

    def groups(
        self,
        heads: Mapping[str, _GroupHead],
        sources: Mapping[str, list[_RuleSource] | None],
        ag_versions: Mapping[str, int | None],
    ) -> dict[str, SecurityGroup]:
        result: dict[str, SecurityGroup] = {}
        seen_ids: dict[str, str] = {}  # rule id → the rule that used it first
        group_ids = set(heads)
        for ident, head in heads.items():
            rules: list[Rule] = []
            complete = head.ok
            for source in sources.get(ident) or []:
                rule = self.rule(source, group_ids, ag_versions, seen_ids)
                if rule is None:
                    complete = False
                else:
                    rules.append(rule)
            self.duplicates(f"group {ident}", rules)
            if complete:
                result[ident] = SecurityGroup(ident, tuple(rules), head.name, head.description)
        return result

    # one rule

    def rule(
        self,
        source: _RuleSource,
        group_ids: set[str],
        ag_versions: Mapping[str, int | None],
        seen_ids: dict[str, str],
    ) -> Rule | None:
        raw, gid = source.raw, source.group_id
        default_id = f"{gid}/{source.position}"
        obj = f"group {gid} rule {default_id}"
        if source.label_extra:
            obj += f" ({source.label_extra})"
        if not isinstance(raw, Mapping):
            self.problem(obj, "", f"expected a mapping (a rule), got {show(raw)}")
            return None
        before = len(self.problems)

        rid = default_id
        if not absent(raw.get("id")):
            ok, value = self.check(obj, "id", parse_ident, raw["id"])
            if ok and value is not None:
                rid = value
                obj = f"group {gid} rule {rid}" + (
                    f" ({source.label_extra})" if source.label_extra else ""
                )
        if rid in seen_ids:
            self.problem(
                obj,
                "id",
                f"rule id {rid!r} is also the id of {seen_ids[rid]}: "
                f"rule ids must be unique within the policy",
            )
        else:
            seen_ids[rid] = f"rule #{source.position} of group {gid}" + (
                " (its default id)" if rid == default_id else ""
            )
        self.fields(obj, raw, RULE_FIELDS, RULE_IGNORED)
        if not source.label_extra and not absent(raw.get("security_group_id")):
            if str(raw["security_group_id"]) != gid:
                self.problem(
                    obj,
                    "security_group_id",
                    f"{show(raw['security_group_id'])} "
                    f"differs from the group that lists the rule ({gid!r})",
                )

        def get(name: str, parse: Callable[[object], T], default: T) -> T:
            if absent(raw.get(name)):
                return default
            ok, value = self.check(obj, name, parse, raw[name])
            return value if ok and value is not None else default

        direction: Direction | None = None
        if absent(raw.get("direction")):
            self.problem(obj, "direction", "required: ingress or egress (inbound/outbound)")
        else:
            ok, direction = self.check(
                obj,
                "direction",
                parse_word,
                raw["direction"],
                DIRECTIONS,
                "ingress, egress (or inbound, outbound)",
            )
        priority = get("priority", parse_priority, 1)
        action: Action = get("action", parse_action, "allow")
        version_ok = True
        version = 4
        if not absent(raw.get("ethertype")):
            version_ok, parsed_version = self.check(
                obj, "ethertype", parse_word, raw["ethertype"], ETHERTYPES, "IPv4, IPv6"
            )
            version = parsed_version or 4
        protocol_ok = True
        protocol: int | None = None
        if not absent(raw.get("protocol")):
            protocol_ok, protocol = self.check(obj, "protocol", parse_protocol, raw["protocol"])
        if protocol_ok and version_ok:
            if protocol == 1 and version == 6:
                self.problem(
                    obj,
                    "protocol",
                    f"{show(raw['protocol'])} (ICMP) needs ethertype "
                    "IPv4: use icmpv6 (58) in an IPv6 rule",
                )
            elif protocol == 58 and version == 4:
                self.problem(
                    obj,
                    "protocol",
                    f"{show(raw['protocol'])} (ICMPv6) needs ethertype "
                    "IPv6: use icmp (1) in an IPv4 rule",
                )

        ports, icmp_type, icmp_code = None, None, None
        if protocol_ok:
            ports, icmp_type, icmp_code = self.ports_and_icmp(obj, raw, protocol)
        prefixes = self.remote(obj, raw, version if version_ok else None, group_ids, ag_versions)
        description = get("description", parse_description, "")
        enabled = True
        if raw.get("enabled") is not None:
            if isinstance(raw["enabled"], bool):
                enabled = raw["enabled"]
            else:
                self.problem(obj, "enabled", f"expected true or false, got {show(raw['enabled'])}")

        if len(self.problems) != before or direction is None:
            return None
        return Rule(
            id=rid,
            group_id=gid,
            position=source.position,
            direction=direction,
            priority=priority,
            action=action,
            ip_version=version,
            protocol=protocol,
            ports=ports,
            icmp_type=icmp_type,
            icmp_code=icmp_code,
            remote_prefixes=prefixes,
            remote_group_id=None
            if absent(raw.get("remote_group_id"))
            else parse_ident(raw["remote_group_id"]),
            remote_address_group_id=None
            if absent(raw.get("remote_address_group_id"))
            else parse_ident(raw["remote_address_group_id"]),
            description=description,
            enabled=enabled,
        )

    def ports_and_icmp(
        self, obj: str, raw: Mapping[str, Any], protocol: int | None
    ) -> tuple[tuple[tuple[int, int], ...] | None, int | None, int | None]:
        """The port set of a tcp/udp rule or the type/code of an ICMP rule; problems recorded."""
        given = {
            name
            for name in ("multiport", "port_range_min", "port_range_max", "icmp_type", "icmp_code")
            if not absent(raw.get(name))
        }
        shown = "all" if protocol is None else show(raw.get("protocol"))
        if protocol in RULE_PORT_PROTOCOLS:
            for name in sorted(given & {"icmp_type", "icmp_code"}):
                self.problem(
                    obj,
                    name,
                    f"allowed only with protocol icmp or icmpv6; this rule's protocol is {shown}",
                )
            old = [name for name in ("port_range_min", "port_range_max") if name in given]
            if "multiport" in given and old:
                self.problem(
                    obj,
                    old[0],
                    "the older port_range_min/port_range_max spelling "
                    "cannot be combined with multiport: use multiport alone",
                )
                return None, None, None
            if "multiport" in given:
                ok, ports = self.check(obj, "multiport", parse_multiport, raw["multiport"])
                return ports, None, None
            bounds: list[int] = []
            for name in old:
                ok, port = self.check(obj, name, parse_integer, raw[name], 1, 65535, "a port")
                if ok and port is not None:
                    bounds.append(port)
            if len(bounds) != len(old) or not bounds:
                return None, None, None
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                self.problem(
                    obj,
                    "port_range_min",
                    f"port_range_min {bounds[0]} is above "
                    f"port_range_max {bounds[1]}: the range is min-max",
                )
                return None, None, None
            return merge_ports([(min(bounds), max(bounds))]), None, None

        if protocol in ICMP_PROTOCOLS:
            if "multiport" in given:
                self.problem(
                    obj,
                    "multiport",
                    f"allowed only with protocol tcp or udp; this rule's "
                    f"protocol is {shown} (use icmp_type/icmp_code)",
                )
            new = [name for name in ("icmp_type", "icmp_code") if name in given]
            old = [name for name in ("port_range_min", "port_range_max") if name in given]
            if new and old:
                self.problem(
                    obj,
                    old[0],
                    "on an ICMP rule port_range_min/port_range_max are "
                    "the older spelling of icmp_type/icmp_code: use one spelling",
                )
                return None, None, None
            type_field, code_field = (
                ("port_range_min", "port_range_max") if old else ("icmp_type", "icmp_code")
            )
            return (None, *self.icmp(obj, raw, protocol, type_field, code_field))

        for name in sorted(given):
            kind = "icmp or icmpv6" if name.startswith("icmp") else "tcp or udp"
            self.problem(
                obj, name, f"allowed only with protocol {kind}; this rule's protocol is {shown}"
            )
        return None, None, None

    def icmp(
        self, obj: str, raw: Mapping[str, Any], protocol: int, type_field: str, code_field: str
    ) -> tuple[int | None, int | None]:
        type_value, code_value = raw.get(type_field), raw.get(code_field)
        if absent(type_value):
            if not absent(code_value):
                self.problem(obj, code_field, f"a code needs a type: set {type_field} too")
            return None, None
        named = icmp_name(type_value) if isinstance(type_value, str) else None
        if (
            named is None
            and isinstance(type_value, str)
            and not re.fullmatch(r"\s*[-+]?[0-9]+\s*", type_value)
        ):
            if protocol == 58:
                self.problem(
                    obj,
                    type_field,
                    f"{show(type_value)}: ICMP type names exist for "
                    "icmp only; give an ICMPv6 type as a number 0..255",
                )
            else:
                self.problem(
                    obj,
                    type_field,
                    f"unknown ICMP type name {show(type_value)}: "
                    "allowed a number 0..255 or one of "
                    + ", ".join(repr(name.capitalize()) for name in ICMP_TYPE_NAMES),
                )
            return None, None
        if named is not None:
            if protocol == 58:
                self.problem(
                    obj,
                    type_field,
                    f"{show(type_value)}: ICMP type names exist for "
                    "icmp only; give an ICMPv6 type as a number 0..255",
                )
                return None, None
            if not absent(code_value):
                self.problem(
                    obj,
                    code_field,
                    f"the type name {show(type_value)} already "
                    f"fixes the code ({named[1]}): remove {code_field}",
                )
                return None, None
            return named
        ok, icmp_type = self.check(
            obj, type_field, parse_integer, type_value, 0, 255, "an ICMP type"
        )
        icmp_code = None
        if not absent(code_value):
            ok_code, icmp_code = self.check(
                obj, code_field, parse_integer, code_value, 0, 255, "an ICMP code"
            )
            ok = ok and ok_code
        return (icmp_type, icmp_code) if ok else (None, None)

    def remote(
        self,
        obj: str,
        raw: Mapping[str, Any],
        version: int | None,
        group_ids: set[str],
        ag_versions: Mapping[str, int | None],
    ) -> tuple[IPNetwork, ...]:
        given = [
            name
            for name in ("remote_ip_prefix", "remote_group_id", "remote_address_group_id")
            if not absent(raw.get(name))
        ]
        if len(given) > 1:
            self.problem(
                obj,
                given[1],
                f"{' and '.join(given)} both given: at most one remote_* field per rule",
            )
            return ()
        if "remote_group_id" in given:
            ok, ident = self.check(obj, "remote_group_id", parse_ident, raw["remote_group_id"])
            if ok and ident not in group_ids:
                self.problem(
                    obj,
                    "remote_group_id",
                    f"unknown security group {ident!r}: "
                    "allowed the id of a group in security_groups",
                )
        if "remote_address_group_id" in given:
            ok, ident = self.check(
                obj, "remote_address_group_id", parse_ident, raw["remote_address_group_id"]
            )
            if ok and ident is not None and ident not in ag_versions:
                self.problem(
                    obj,
                    "remote_address_group_id",
                    f"unknown address group {ident!r}: allowed the id of a group in address_groups",
                )
            elif ok and ident is not None:
                group_version = ag_versions[ident]
                if None not in (group_version, version) and group_version != version:
                    self.problem(
                        obj,
                        "remote_address_group_id",
                        f"address group {ident} is "
                        f"IPv{group_version}, this rule is IPv{version}: they must match",
                    )
        if "remote_ip_prefix" not in given:
            return ()
        value = raw["remote_ip_prefix"]
        if not isinstance(value, str):
            self.problem(
                obj,
                "remote_ip_prefix",
                f"expected an IP or CIDR (several as a comma list 'a, b/24'), got {show(value)}",
            )
            return ()
        prefixes: list[IPNetwork] = []
        if any(not part.strip() for part in value.split(",")):
            self.problem(
                obj,
                "remote_ip_prefix",
                f"an empty entry in {show(value)}: expected IPs or CIDRs separated by commas",
            )
        for part in value.split(","):
            if not part.strip():
                continue
            ok, network = self.check(obj, "remote_ip_prefix", parse_network, part)
            if not ok or network is None:
                continue
            if version is not None and network.version != version:
                self.problem(
                    obj,
                    "remote_ip_prefix",
                    f"{part.strip()!r} is IPv{network.version}: "
                    f"this rule's ethertype is IPv{version}",
                )
            elif network in prefixes:
                self.warn(obj, f"remote_ip_prefix lists {network} twice")
            else:
                prefixes.append(network)
        return tuple(prefixes)

    def optional_text(self, obj: str, raw: Mapping[str, Any], name: str) -> str | None:
        if raw.get(name) is None:
            return None
        ok, value = self.check(obj, name, parse_text, raw[name])
        return value

    # duplicates within a group: the cloud's import refuses them, we load them and warn

    def duplicates(self, obj: str, rules: list[Rule]) -> None:
        seen: dict[tuple[Any, ...], Rule] = {}
        twins: dict[tuple[Any, ...], Rule] = {}
        reported: set[tuple[str, str]] = set()
        for rule in rules:
            remotes: tuple[Any, ...] = rule.remote_prefixes or (None,)
            for remote in remotes:
                key = (
                    rule.direction,
                    rule.priority,
                    rule.ip_version,
                    rule.protocol,
                    rule.ports,
                    rule.icmp_type,
                    rule.icmp_code,
                    remote,
                    rule.remote_group_id,
                    rule.remote_address_group_id,
                    rule.enabled,
                )
                same = seen.get((*key, rule.action))
                opposite = twins.get((*key, "deny" if rule.action == "allow" else "allow"))
                if same is not None and (same.id, rule.id) not in reported:
                    reported.add((same.id, rule.id))
                    self.warn(
                        obj,
                        f"rules {same.id} and {rule.id} are duplicates (identical in "
                        "every matching field): the cloud would refuse the second",
                    )
                elif opposite is not None and (opposite.id, rule.id) not in reported:
                    reported.add((opposite.id, rule.id))
                    self.warn(
                        obj,
                        f"rules {opposite.id} and {rule.id} differ only in their "
                        f"action: with deny first at equal priority, "
                        f"{rule.id if rule.action == 'deny' else opposite.id} always wins",
                    )
                seen.setdefault((*key, rule.action), rule)
                twins.setdefault((*key, rule.action), rule)

    # instances

    def instances(self, raws: list[Any], group_ids: set[str]) -> dict[str, Instance]:
        result: dict[str, Instance] = {}
        seen_ids: set[str] = set()
        owners: dict[IPAddress, str] = {}
        for index, raw in enumerate(raws, 1):
            obj = f"instance #{index}"
            if not isinstance(raw, Mapping):
                self.problem(
                    obj, "", f"expected a mapping (id, ips, security_groups), got {show(raw)}"
                )
                continue
            before = len(self.problems)
            ok, ident = self.check(obj, "id", parse_ident, raw.get("id"))
            if ok and ident is not None:
                obj = f"instance {ident}"
                if ident in seen_ids:
                    self.problem(
                        obj, "id", f"instance id {ident!r} is used twice: ids must be unique"
                    )
                seen_ids.add(ident)
            self.fields(obj, raw, INSTANCE_FIELDS, INSTANCE_IGNORED)
            name = self.optional_text(obj, raw, "name")

            ips: list[IPAddress] = []
            raw_ips = raw.get("ips")
            if raw_ips is None or raw_ips == []:
                self.problem(obj, "ips", "required: a list of at least one IP address")
            for ip_text in self.items(obj, "ips", raw_ips, "IP addresses"):
                ok, address = self.check(obj, "ips", parse_address, ip_text)
                if not ok or address is None:
                    continue
                if address in ips:
                    self.problem(obj, "ips", f"{address} is listed twice")
                elif address in owners:
                    self.problem(
                        obj,
                        "ips",
                        f"{address} also belongs to {owners[address]}: "
                        "two instances may not share an IP",
                    )
                else:
                    ips.append(address)
                    owners[address] = obj

            groups: list[str] = []
            if "security_groups" not in raw or raw["security_groups"] is None:
                self.problem(
                    obj,
                    "security_groups",
                    "required: the list of group ids, first = "
                    "highest priority (an empty list [] denies everything)",
                )
            for entry in self.items(
                obj, "security_groups", raw.get("security_groups"), "security group ids"
            ):
                ok, gid = self.check(obj, "security_groups", parse_ident, entry)
                if not ok or gid is None:
                    continue
                if gid not in group_ids:
                    self.problem(
                        obj,
                        "security_groups",
                        f"unknown security group {gid!r}: "
                        "allowed the ids of groups in security_groups",
                    )
                elif gid in groups:
                    self.problem(
                        obj,
                        "security_groups",
                        f"{gid!r} is listed twice: "
                        "a group may appear only once in an instance's sequence",
                    )
                else:
                    groups.append(gid)
            if len(self.problems) == before and ident is not None:
                result[ident] = Instance(ident, tuple(ips), tuple(groups), name or "")
        return result
