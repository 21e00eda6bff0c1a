"""Policy file syntax: bytes -> plain data (dicts, lists, strings, numbers).

A policy file is YAML or JSON (JSON is read by a JSON parser whenever the content looks like
JSON, so its syntax errors come with JSON's line and column). Nothing here knows the model:
`classifier.policy.loader` walks what this returns.

The YAML reader is YAML 1.2-flavoured on purpose: only true/false are booleans ("no" stays a
string), `22:30` is not a base-60 integer and `022` is not octal, timestamps stay strings, and
a duplicated key is a syntax error rather than a silent "last one wins". Every failure is a
`PolicyError` with one `Problem` naming the file (and line and column where the parser knows).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from classifier.errors import PolicyError, Problem

# libyaml's parser when PyYAML was built with it: about 10x faster on large exports.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlLoader(_SafeBase):  # type: ignore[valid-type, misc]
    """SafeLoader with YAML 1.2-style scalars and duplicate keys refused (see module doc)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key_node.value}'", key_node.start_mark
                    )
                seen.add(key_node.value)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_YamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0b[01_]+)$"),
    list("-+0123456789"),
)
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse(raw: bytes, source: str, suffix: str) -> object:
    """Bytes → plain data. JSON if it looks like JSON, else YAML; every failure a Problem."""

    def fail(message: str) -> PolicyError:
        return PolicyError([Problem(source, "", "", message)])

    if b"\x00" in raw:
        raise fail("binary file (NUL bytes): a policy is a YAML or JSON text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(
            f"binary file or not UTF-8 (byte {exc.start}): a policy is a UTF-8 YAML or JSON text"
        ) from None
    if not text.strip():
        raise fail("empty file: expected a mapping with security_groups, address_groups, instances")
    looks_json = text.lstrip()[:1] in ("{", "[")
    if looks_json:
        try:
            return _parse_json(text, source)
        except json.JSONDecodeError as exc:
            json_error = fail(f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}")
        except RecursionError:
            json_error = fail("invalid JSON: nested too deeply")
        except ValueError:  # an integer literal of thousands of digits
            json_error = fail("invalid JSON: a number too long to read (thousands of digits)")
        if suffix not in (".yaml", ".yml"):
            raise json_error
    try:
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise fail(f"{where}invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise fail(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise fail("invalid YAML: nested too deeply") from None
    except ValueError:  # an integer of thousands of digits
        raise fail("invalid YAML: a number too long to read (thousands of digits)") from None


def _parse_json(text: str, source: str) -> object:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    data = json.loads(text, object_pairs_hook=pairs)
    if duplicates:
        raise PolicyError(
            [
                Problem(source, "", "", f"invalid JSON: duplicate key '{key}' in an object")
                for key in dict.fromkeys(duplicates)
            ]
        )
    return data
