"""Hostile policy files (robustness.md section 3): every case ends in exit 0 or 2 with one line
per problem, within 10 seconds and 2 GiB, and nothing in the file is ever executed.

Each case runs `sgclassify validate` in a real subprocess under RLIMIT_AS = 2 GiB (an
address-space limit: the peak resident memory is below it) with a 10 s timeout (a hang
fails the test; the times themselves are in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.policy.syntax import MAX_ELEMENTS, MAX_VALUES

RULE = "{direction: ingress, protocol: tcp, port_range_min: 80, port_range_max: 80}"


def _laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]\n"
        prev = name
    return text + f"security_groups: *{prev}\n"


def _laughs_of_groups() -> str:
    """The bomb in a shape the loader would walk: every alias is a valid-looking group."""
    text = "g: &g {id: sg-1, rules: [" + RULE + "]}\n"
    prev = "g"
    for name in "bcdefghij":
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]\n"
        prev = name
    return text + f"security_groups: *{prev}\n"


def _group(rule_fields: str) -> str:
    return f"security_groups:\n- id: sg-1\n  rules:\n  - {{direction: ingress, {rule_fields}}}\n"


CASES: dict[str, tuple[bytes, int, str]] = {
    # name: (file bytes, exit code, a text the one line holds)
    "billion-laughs": (_laughs().encode(), 2, "aliases are expanded"),
    "billion-laughs-of-groups": (_laughs_of_groups().encode(), 2, "aliases are expanded"),
    "alias-inside-itself": (b"security_groups: &a [*a]\n", 2, "inside its own anchor"),
    "digits-1e5-yaml": (
        _group("protocol: tcp, port_range_min: " + "9" * 100_000).encode(),
        2,
        "too long",
    ),
    "digits-1e5-json": (
        (
            '{"security_groups": [{"id": "sg-1", "rules": [{"port_range_min": '
            + "9" * 100_000
            + "}]}]}"
        ).encode(),
        2,
        "too long",
    ),  # fmt: skip
    "1e400": (_group("protocol: tcp, port_range_min: 1e400").encode(), 2, "port_range_min"),
    "inf": (_group("protocol: tcp, port_range_min: .inf").encode(), 2, "port_range_min"),
    "nan": (_group("protocol: tcp, port_range_min: .nan").encode(), 2, "port_range_min"),
    "sexagesimal": (_group("protocol: tcp, port_range_min: 1:30").encode(), 2, "'1:30'"),
    # docs/policy-format.md: YAML 1.2's reading, 017 is seventeen (not YAML 1.1's octal 15)
    "octal-yaml11": (_group("protocol: tcp, port_range_min: 017").encode(), 0, "ok"),
    "octal-0o": (_group("protocol: tcp, port_range_min: 0o17").encode(), 2, "'0o17'"),
    "deep-flow-1e5": (
        ("security_groups: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
        2,
        "depth",
    ),
    "deep-mapping-1e5": (
        ("security_groups: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n").encode(),
        2,
        "depth",
    ),
    "deep-block-1e5": (("security_groups: " + "- " * 100_000 + "x\n").encode(), 2, "YAML"),
    "deep-json-1e5": (
        ('{"security_groups": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
        2,
        "deeply",
    ),
    "list-1e6-yaml": (
        ("security_groups:\n" + "- 1\n" * 1_000_000).encode(),
        2,
        f"more than {MAX_ELEMENTS}",
    ),
    "list-1e6-json": (
        ('{"security_groups": [' + ",".join(["1"] * 1_000_000) + "]}").encode(),
        2,
        f"a list of 1000000 elements: at most {MAX_ELEMENTS}",
    ),
    "values-yaml": (
        ("security_groups:\n- id: sg-1\n  rules:\n" + f"  - {RULE}\n" * 60_000).encode(),
        2,
        f"more than {MAX_VALUES} values",
    ),
    "string-4mb-value": (
        f"security_groups:\n- id: sg-1\n  description: {'x' * 4_000_000}\n".encode(),
        0,
        "ok",
    ),
    "string-4mb-rule-description": (
        _group(f"protocol: tcp, description: {'x' * 4_000_000}").encode(),
        2,
        "at most 255",
    ),
    "string-4mb-key": (  # YAML's implicit keys end at 1024 characters
        ("security_groups: []\n" + "k" * 4_000_000 + ": 1\n").encode(),
        2,
        "YAML",
    ),
    "string-4mb-id": (f"security_groups:\n- id: sg-{'1' * 4_000_000}\n".encode(), 0, "ok"),
    "python-object": (
        b"security_groups: !!python/object/apply:os.system ['touch PWNED']\n",
        2,
        "tag",
    ),
    "python-name": (b"security_groups: !!python/name:os.system\n", 2, "tag"),
    "binary": (b"security_groups: []\ndescription: !!binary aGVsbG8=\n", 2, "binary"),
    "set": (b"security_groups: !!set {a, b}\n", 2, "set"),
    "omap": (b"security_groups: !!omap [a: 1]\n", 2, "omap"),
    "timestamp": (b"security_groups: []\nwhen: !!timestamp 2001-12-14\n", 2, "timestamp"),
    "unknown-tag": (b"security_groups: !mytag x\n", 2, "!mytag"),
    "complex-key": (b"? [a, b]\n: 1\nsecurity_groups: []\n", 2, "unhashable"),
    "integer-key": (b"1: 2\nsecurity_groups: []\n", 0, "ok"),
    "null-key": (b"null: 2\nsecurity_groups: []\n", 0, "ok"),
    "duplicate-key": (b"security_groups: []\nsecurity_groups: []\n", 2, "duplicate key"),
    "documents": (b"security_groups: []\n---\nsecurity_groups: []\n", 2, "single document"),
    "not-utf8": (b"security_groups: [\xe9]\n", 2, "UTF-8"),
    "nul": (b"security_groups: []\n\0", 2, "NUL"),
    "bom": (b"\xef\xbb\xbfsecurity_groups: []\n", 0, "ok"),
    "cut": (b"security_groups:\n- id: sg-1\n  rules:\n  - {direction: ingr", 2, "YAML"),
    "huge-file": (b"# " + b"x" * (65 << 20) + b"\n", 2, "at most 64 MiB"),
}


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.slow  # pure Python: once, in the compiled pass of `make test`
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_policy(name: str, tmp_path: Path) -> None:
    content, code, text = CASES[name]
    suffix = ".json" if content.lstrip()[:1] == b"{" else ".yaml"
    path = tmp_path / f"policy{suffix}"
    path.write_bytes(content)
    exe = Path(sys.executable).with_name("sgclassify")
    proc = subprocess.run(
        [str(exe), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        preexec_fn=_limits,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    if code == 2:
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and len(lines) == 1, lines[:5]
        assert errors[0].startswith(f"error: {path}: ")
        assert text in errors[0], errors[0][:300]
    else:
        assert proc.stdout.startswith("ok:")


def test_a_policy_that_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    exe = Path(sys.executable).with_name("sgclassify")
    for path in (fifo, Path("/dev/zero")):
        proc = subprocess.run(
            [str(exe), "validate", str(path)], capture_output=True, text=True, timeout=10
        )
        assert proc.returncode == 2
        assert proc.stderr.strip() == (
            f"error: {path}: not a regular file (a pipe or device): give a policy file"
        )


def test_the_value_bound_counts_json_too() -> None:
    from classifier.errors import PolicyError
    from classifier.policy.syntax import parse

    groups = [{"id": f"sg-{k}", "name": "n", "description": "d"} for k in range(MAX_VALUES // 6)]
    data = json.dumps({"security_groups": groups})
    with pytest.raises(PolicyError, match="a policy this large is refused"):
        parse(data.encode(), "p.json", ".json")
