"""The policy room: the model of security groups and how policy files become it.

Owns: the frozen model (`model`), the file syntax (`syntax`: YAML/JSON bytes -> data), the
field parsers and vocabulary (`fields`), and the walk that validates data into the model and
reports every problem at once (`loader`).

May import: `classifier.errors` and `classifier.codes` only. Everything else imports this.
"""

from classifier.policy.loader import load_policy, load_policy_data, policy_summary
from classifier.policy.model import (
    PROTOCOL_NAMES,
    PROTOCOL_NUMBERS,
    Action,
    AddressGroup,
    AddressRange,
    Direction,
    Instance,
    IPAddress,
    IPNetwork,
    Policy,
    Rule,
    SecurityGroup,
    merge_ranges,
)

__all__ = [
    "PROTOCOL_NAMES",
    "PROTOCOL_NUMBERS",
    "Action",
    "AddressGroup",
    "AddressRange",
    "Direction",
    "IPAddress",
    "IPNetwork",
    "Instance",
    "Policy",
    "Rule",
    "SecurityGroup",
    "load_policy",
    "load_policy_data",
    "merge_ranges",
    "policy_summary",
]
