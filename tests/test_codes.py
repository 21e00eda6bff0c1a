"""The one contract: classifier/codes.py, its C mirror csrc/codes.h and its Cython
declarations _codes.pxd name the same codes with the same values, and no other module of the
package assigns a code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np

from classifier import codes

PACKAGE = Path(codes.__file__).parent
HEADER = PACKAGE / "csrc" / "codes.h"
PXD = PACKAGE / "_codes.pxd"


def python_codes() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(codes).items()
        if name.isupper() and isinstance(value, int) and not isinstance(value, bool)
    }


def header_codes() -> dict[str, int]:
    text = HEADER.read_text()
    found: dict[str, int] = {}
    for body in re.findall(r"enum\s*\{(.*?)\}", text, re.S):
        for name, value in re.findall(
            r"\b([A-Z][A-Z0-9_]*)\s*=\s*(-?(?:0x[0-9A-Fa-f]+|\d+))", body
        ):
            found[name] = int(value, 0)
    defines = dict(re.findall(r"#define ([A-Z][A-Z0-9_]*) (.+)", text))
    defines.pop("CLASSIFIER_CODES_H", None)
    for name in defines:
        expr = defines[name]
        for _ in range(len(defines)):  # substitute until only numbers are left
            expr = re.sub(r"\b([A-Z][A-Z0-9_]*)\b", lambda m: f"({defines[m.group(1)]})", expr)
        found[name] = int(eval(re.sub(r"(\d+)LL\b", r"\1", expr), {"__builtins__": {}}))
    return found


def pxd_names() -> set[str]:
    text = PXD.read_text()
    enum_block = text.split("    enum:\n", 1)[1].split("\n\n", 1)[0]
    names = set(re.findall(r"^\s+([A-Z][A-Z0-9_]*)\s*$", enum_block, re.M))
    names |= set(re.findall(r"const int64_t ([A-Z][A-Z0-9_]*)", text))
    return names


def test_python_header_and_pxd_name_the_same_codes() -> None:
    python, header = python_codes(), header_codes()
    assert set(python) == set(header), set(python) ^ set(header)
    assert pxd_names() == set(header), pxd_names() ^ set(header)


def test_python_and_header_values_agree() -> None:
    header = header_codes()
    for name, value in python_codes().items():
        assert header[name] == value, name


def test_the_c_port_protocols_are_codes_port_protocols() -> None:
    text = HEADER.read_text()
    body = text.split("code_carries_ports(uint32_t protocol) {", 1)[1].split("}", 1)[0]
    named = set(re.findall(r"\b(PROTO_[A-Z0-9]+)\b", body))
    assert {getattr(codes, name) for name in named} == codes.PORT_PROTOCOLS


def test_names_tables_cover_their_codes() -> None:
    assert codes.VERDICT_NAMES[codes.VERDICT_MALFORMED] == "malformed"
    assert codes.REASON_NAMES[codes.REASON_RELATED] == "related"
    assert codes.DIRECTION_NAMES[codes.DIRECTION_NONE] == ""
    assert codes.STATUS_NAMES[codes.STATUS_L4_TRUNCATED] == "l4-truncated"
    assert codes.FRAGMENT_NAMES[codes.FRAGMENT_LATER] == "later"
    assert len(codes.MALFORMED_REASONS) == codes.MALFORMED_UNSUPPORTED_LINK + 1
    shown = codes.names(codes.VERDICT_NAMES, np.array([0, 4, 200], np.uint8)).tolist()
    assert shown == ["allow", "malformed", ""]


def test_no_other_module_assigns_a_code() -> None:
    code_names = set(python_codes())
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "codes.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name) and name.id in code_names:
                        offenders.append(f"{path.relative_to(PACKAGE)}: {name.id}")
    assert not offenders, offenders


def test_no_pyx_restates_a_code() -> None:
    code_names = set(python_codes())
    offenders = []
    for path in sorted(PACKAGE.rglob("*.pyx")):
        for match in re.finditer(r"^\s+([A-Z][A-Z0-9_]*)\s*=", path.read_text(), re.M):
            if match.group(1) in code_names:
                offenders.append(f"{path.name}: {match.group(1)}")
    assert not offenders, offenders


def test_icmp_keys_sit_above_the_unknown_port_and_below_the_wildcard() -> None:
    from classifier.acl import PORT_MAX

    lowest = codes.ICMP_PORT_BASE
    highest = codes.ICMP_PORT_BASE + 255 * 512 + codes.ICMP_CODE_UNKNOWN
    assert 65535 < codes.PORT_UNKNOWN < lowest and highest < PORT_MAX
    assert codes.ICMP_CODE_UNKNOWN > 255  # equal to no real code, inside its type's block
