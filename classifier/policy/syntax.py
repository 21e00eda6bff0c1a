"""Policy file syntax: bytes -> plain data (dicts, lists, strings, numbers).

A policy file is YAML or JSON (JSON is read by a JSON parser whenever the content looks like
JSON, so its syntax errors come with JSON's line and column). Nothing here knows the model:
`classifier.policy.loader` walks what this returns.

The YAML reader is YAML 1.2-flavoured on purpose: only true/false are booleans ("no" stays a
string), `22:30` is not a base-60 integer and `022` is not octal, timestamps stay strings, and
a duplicated key is a syntax error rather than a silent "last one wins". Every failure is a
`PolicyError` with one `Problem` naming the file (and line and column where the parser knows).

Hostile input (robustness.md section 3) ends in one line, in bounded time and memory: tags other
than the plain ones (`!!python/...`, `!!binary`, `!!set`, `!!omap`, `!!pairs`, `!!timestamp`,
unknown `!x`) are refused before anything is built, never executed; YAML's own parser refuses
nesting deeper than 1000 levels (JSON's: Python's recursion limit); after parsing, `_bounded`
walks the result once (shared aliases counted as often as they are used, without expanding
them) and refuses more than MAX_VALUES values in all (an alias bomb, "billion laughs"), a list
or mapping of more than MAX_ELEMENTS elements, and an alias that contains itself. Numbers of
any size are cut short by `fields` (MAX_DIGITS), never converted whole.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import yaml

from classifier.errors import PolicyError, Problem

# libyaml's parser when PyYAML was built with it: about 10x faster on large exports.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_ELEMENTS = 100_000  # per list or mapping: 100x a large real policy's longest list
MAX_VALUES = 500_000  # in the whole file (keys too), aliases counted as often as used: 10 s
MAX_FILE_BYTES = 64 << 20  # a policy file; a 100,000-rule export is about 20 MB of JSON

# the tags SafeLoader would build into something a policy never holds: refused by name
_REFUSED_TAGS = ("binary", "set", "omap", "pairs", "timestamp")


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

    def construct_refused(self, node: yaml.Node) -> NoReturn:
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {node.tag!r} is not allowed in a policy", node.start_mark
        )


for _tag in _REFUSED_TAGS:
    _YamlLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _YamlLoader.construct_refused)


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

    if len(raw) > MAX_FILE_BYTES:
        raise fail(f"{len(raw)} bytes: a policy file is at most {MAX_FILE_BYTES >> 20} MiB")
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
    data = _parse_text(text, source, suffix, fail)
    problem = _bounded(data)  # JSON's (YAML was scanned before it was built; this is cheap)
    if problem:
        raise fail(problem)
    return data


def _parse_text(text: str, source: str, suffix: str, fail: Any) -> object:
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
        problem = _yaml_bounded(text)
        if problem:
            raise fail(problem)
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise fail(f"{where}invalid YAML: {what}") from None
    except yaml.YAMLError as exc:  # a reader error: "... characters are not allowed\n  in ..."
        message = " ".join(str(exc).split("\n", 1)[0].split())
        position = getattr(exc, "position", None)
        where = f"character {position + 1}: " if isinstance(position, int) else ""
        raise fail(f"{where}invalid YAML: {message}") from None
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


def _yaml_bounded(text: str) -> str:
    """The limits of the module doc on YAML's event stream, before any node is built: ""
    or the problem, with its line and column. About 5x faster than building the nodes, so
    a file of millions of tiny values is refused in a second or two."""
    loader = _YamlLoader(text)
    counts: list[int] = []  # children of each open collection
    limits: list[int] = []  # ... and how many it may have (a mapping's entry is two)
    starts: list[int] = []  # the running total when each open collection started
    anchors: list[str | None] = []
    sizes: dict[str, int | None] = {}  # anchor -> expanded size (None: still open)
    total = 0
    aliased = False
    try:
        while True:
            event = loader.get_event()
            if event is None or isinstance(event, yaml.StreamEndEvent):
                return ""
            if not isinstance(event, yaml.NodeEvent | yaml.CollectionEndEvent):
                continue
            mark = event.start_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            if isinstance(event, yaml.CollectionEndEvent):
                counts.pop()
                limits.pop()
                anchor = anchors.pop()
                start = starts.pop()
                if anchor is not None:
                    sizes[anchor] = total - start
                continue
            if counts:
                counts[-1] += 1
                if counts[-1] > limits[-1]:
                    return f"{where}more than {MAX_ELEMENTS} elements in one list or mapping"
            if isinstance(event, yaml.AliasEvent):
                size = sizes.get(str(event.anchor), 1)
                if size is None:
                    return f"{where}the alias *{event.anchor} is inside its own anchor"
                total += size
                aliased = True
            else:
                total += 1
                if isinstance(event, yaml.CollectionStartEvent):
                    counts.append(0)
                    limits.append(
                        MAX_ELEMENTS * (2 if isinstance(event, yaml.MappingStartEvent) else 1)
                    )
                    starts.append(total - 1)
                    anchors.append(event.anchor)
                    if event.anchor is not None:
                        sizes[event.anchor] = None
                elif event.anchor is not None:
                    sizes[event.anchor] = 1
            if total > MAX_VALUES:
                return where + _too_many(aliased)
    finally:
        loader.dispose()


def _bounded(data: object) -> str:
    """ "" when `data` is within the limits of the module doc, else the one-line problem.

    One iterative walk; a container met again (a YAML alias) is not walked again: its
    expanded size, computed the first time, is added once per use, so a billion laughs costs
    its distinct nodes only."""
    sizes: dict[int, int] = {}  # id -> expanded size of a finished container
    open_ids: set[int] = set()  # containers on the walk's path (a cycle = an alias inside itself)
    keep: list[object] = []  # holds every walked container alive while its id is a key
    shared: list[bool] = []  # a container met twice (YAML aliases)
    # (container, children iterator, running size, path) frames
    stack: list[tuple[object, Any, list[int], str]] = []
    total = 0

    def enter(value: object, path: str) -> str:
        nonlocal total
        if not isinstance(value, dict | list):
            total += 1
            return ""
        known = sizes.get(id(value))
        if known is not None:
            total += known
            shared.append(True)
            return ""
        if id(value) in open_ids:
            return f"{path or 'the top level'}: a YAML alias that contains itself"
        if len(value) > MAX_ELEMENTS:
            what = "list" if isinstance(value, list) else "mapping"
            return (
                f"{path or 'the top level'}: a {what} of {len(value)} elements: "
                f"at most {MAX_ELEMENTS} allowed"
            )
        open_ids.add(id(value))
        keep.append(value)
        items = iter(value.items()) if isinstance(value, dict) else iter(enumerate(value))
        stack.append((value, items, [total], path))
        total += 1
        return ""

    problem = enter(data, "")
    while stack and not problem:
        if total > MAX_VALUES:
            return _too_many(bool(shared))
        value, items, start, path = stack[-1]
        step = next(items, None)
        if step is None:
            stack.pop()
            open_ids.discard(id(value))
            sizes[id(value)] = total - start[0]
            continue
        key, child = step
        if isinstance(value, dict):
            total += 1  # the key, as YAML's event count has it
        where = f"{path}[{key}]" if isinstance(value, list) else f"{path}.{key}".lstrip(".")
        problem = enter(child, where if len(where) < 200 else where[:200] + "...")
    if not problem and total > MAX_VALUES:
        return _too_many(bool(shared))
    return problem


def _too_many(aliased: bool) -> str:
    if aliased:
        return f"more than {MAX_VALUES} values once YAML aliases are expanded (an alias bomb?)"
    return f"more than {MAX_VALUES} values (keys included): a policy this large is refused"
