"""The first-match core against a trivial linear classifier, plus its edges and its errors.

Every lookup test runs on both twins (`twin_mode`); the linear classifier below is the oracle
(OVS's test-classifier habit): a rule matches when every field does, the first one wins.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import ClassifierError, acl
from classifier.acl import PORT_MAX, PORT_UNKNOWN, tables

U64 = (1 << 64) - 1
V4_POOL = [
    0,
    1,
    0x0A000000,
    0x0A0000FF,
    0x0A000100,
    0x0AFFFFFF,
    0xC0000214,
    0xC000020A,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
]
V6_POOL = [
    0,
    1,
    U64 - 1,
    U64,
    U64 + 1,
    (1 << 65),
    0x20010DB8 << 96,
    (0x20010DB8 << 96) | U64,
    (0x20010DB8 << 96) + (1 << 64),
    (1 << 128) - 2,
    (1 << 128) - 1,
    1 << 127,
]
PORT_POOL = [0, 1, 22, 80, 443, 1023, 1024, 8080, 65534, 65535]
PROTO_POOL = [0, 1, 6, 17, 47, 58, 255]


# --- the oracle ----------------------------------------------------------------------------


def _addr(value: np.ndarray | np.integer, version: int) -> int:
    if version == 4:
        return int(value)
    hi, lo = (int(x) for x in np.asarray(value))
    return (hi << 64) | lo


def linear_first_match(rules: np.ndarray, version: int, packets: np.ndarray) -> np.ndarray:
    """One Python loop per packet and rule: obviously right, slow on purpose."""
    out = np.full(len(packets), -1, np.int32)
    for i, p in enumerate(packets):
        src, dst = _addr(p["src"], version), _addr(p["dst"], version)
        for r, rule in enumerate(rules):
            if (
                _addr(rule["src_lo"], version) <= src <= _addr(rule["src_hi"], version)
                and _addr(rule["dst_lo"], version) <= dst <= _addr(rule["dst_hi"], version)
                and rule["sport_lo"] <= p["sport"] <= rule["sport_hi"]
                and rule["dport_lo"] <= p["dport"] <= rule["dport_hi"]
                and (int(p["proto"]) & int(rule["proto_mask"]))
                == (int(rule["proto"]) & int(rule["proto_mask"]))
            ):
                out[i] = r
                break
    return out


# --- strategies ----------------------------------------------------------------------------


def _words(value: int) -> tuple[int, int]:
    return value >> 64, value & U64


@st.composite
def address_ranges(draw: st.DrawFn, version: int) -> tuple[int, int]:
    bits = 32 if version == 4 else 128
    pool = V4_POOL if version == 4 else V6_POOL
    kind = draw(st.sampled_from(["any", "prefix", "range", "host"]))
    if kind == "any":
        return 0, (1 << bits) - 1
    base = draw(st.sampled_from(pool) | st.integers(0, (1 << bits) - 1))
    if kind == "host":
        return base, base
    if kind == "prefix":
        plen = draw(st.integers(0, bits))
        host = (1 << (bits - plen)) - 1
        return base & ~host, (base & ~host) | host
    other = draw(st.sampled_from(pool) | st.integers(0, (1 << bits) - 1))
    return min(base, other), max(base, other)


@st.composite
def port_ranges(draw: st.DrawFn) -> tuple[int, int]:
    kind = draw(st.sampled_from(["any", "all-real", "exact", "range", "icmp-type"]))
    if kind == "any":
        return 0, PORT_MAX
    if kind == "all-real":
        return 0, 65535
    a = draw(st.sampled_from(PORT_POOL) | st.integers(0, 65535))
    if kind == "exact":
        return a, a
    if kind == "icmp-type":
        t = a & 0xFF
        return t * 256, t * 256 + 255
    b = draw(st.sampled_from(PORT_POOL) | st.integers(0, 65535))
    return min(a, b), max(a, b)


@st.composite
def rule_sets(draw: st.DrawFn, version: int, max_rules: int = 30) -> np.ndarray:
    n = draw(st.integers(0, max_rules))
    rules = acl.wildcard_rules(n, version)
    for r in range(n):
        for name in ("src", "dst"):
            lo, hi = draw(address_ranges(version))
            rules[r][name + "_lo"] = lo if version == 4 else _words(lo)
            rules[r][name + "_hi"] = hi if version == 4 else _words(hi)
        for name in ("sport", "dport"):
            rules[r][name + "_lo"], rules[r][name + "_hi"] = draw(port_ranges())
        mask = draw(st.sampled_from([0, 0xFF, 0xFF, 0xF0, 0x0F]) | st.integers(0, 255))
        rules[r]["proto"] = draw(st.sampled_from(PROTO_POOL) | st.integers(0, 255))
        rules[r]["proto_mask"] = mask
    return rules


@st.composite
def packets_for(
    draw: st.DrawFn, rules: np.ndarray, version: int, max_packets: int = 25
) -> np.ndarray:
    """Packets on and next to the rules' boundaries (where off-by-ones live)."""
    bits = 32 if version == 4 else 128
    top = (1 << bits) - 1
    edges: dict[str, list[int]] = {"src": [], "dst": [], "sport": [], "dport": []}
    for rule in rules:
        for name in edges:
            for end in ("_lo", "_hi"):
                v = rule[name + end]
                v = int(v) if name.endswith("port") or version == 4 else _addr(v, 6)
                edges[name] += [v, v - 1, v + 1]
    n = draw(st.integers(1, max_packets))
    dtype = acl.PACKET_V4_DTYPE if version == 4 else acl.PACKET_V6_DTYPE
    out = np.zeros(n, dtype)
    pool = V4_POOL if version == 4 else V6_POOL
    for i in range(n):
        for name in ("src", "dst"):
            choices = [e for e in edges[name] if 0 <= e <= top] + pool
            v = draw(st.sampled_from(choices) | st.integers(0, top))
            out[i][name] = v if version == 4 else _words(v)
        for name in ("sport", "dport"):
            choices = [e for e in edges[name] if 0 <= e <= 0x10000] + PORT_POOL + [PORT_UNKNOWN]
            out[i][name] = draw(st.sampled_from(choices))
        out[i]["proto"] = draw(st.sampled_from(PROTO_POOL) | st.integers(0, 255))
    return out


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray]:
    version = draw(st.sampled_from([4, 6]))
    rules = draw(rule_sets(version))
    return version, rules, draw(packets_for(rules, version))


# --- differential ----------------------------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_matches_linear_classifier(
    twin_mode: str, case: tuple[int, np.ndarray, np.ndarray]
) -> None:
    version, rules, packets = case
    matcher = acl.compile(rules)
    assert matcher.version == version and len(matcher) == len(rules)
    np.testing.assert_array_equal(
        matcher.match(packets), linear_first_match(rules, version, packets)
    )


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_many_rules_many_words(twin_mode: str, data: st.DataObject) -> None:
    """Hundreds of rules: several bitset words and summary words; late first matches."""
    version = data.draw(st.sampled_from([4, 6]))
    base = data.draw(rule_sets(version, max_rules=12))
    rules = np.concatenate(
        [np.tile(base, 400 // max(1, len(base)))[:399], acl.wildcard_rules(1, version)]
    )
    packets = data.draw(packets_for(base, version, max_packets=10))
    np.testing.assert_array_equal(
        acl.compile(rules).match(packets), linear_first_match(rules, version, packets)
    )


# --- edges -----------------------------------------------------------------------------------


def _packets_v4(*rows: tuple[int, int, int, int, int]) -> np.ndarray:
    return np.array(list(rows), dtype=acl.PACKET_V4_DTYPE)


def test_empty_rule_set_matches_nothing(twin_mode: str) -> None:
    for version in (4, 6):
        matcher = acl.compile(acl.wildcard_rules(0, version))
        packets = np.zeros(3, acl.PACKET_V4_DTYPE if version == 4 else acl.PACKET_V6_DTYPE)
        assert matcher.match(packets).tolist() == [-1, -1, -1]


def test_all_wildcard_rule_matches_everything(twin_mode: str) -> None:
    rules = acl.wildcard_rules(3)
    packets = _packets_v4((0, 0, 0, 0, 0), (0xFFFFFFFF, 0xFFFFFFFF, 65535, PORT_UNKNOWN, 255))
    assert acl.compile(rules).match(packets).tolist() == [0, 0]


def test_unknown_ports_match_only_the_wildcard(twin_mode: str) -> None:
    rules = acl.wildcard_rules(3)
    rules[0]["dport_lo"], rules[0]["dport_hi"] = 0, 65535  # every real port, not "unknown"
    rules[1]["dport_lo"], rules[1]["dport_hi"] = 8 * 256, 8 * 256 + 255  # ICMP type 8
    packets = _packets_v4((1, 2, 3, 4, 6), (1, 2, 3, PORT_UNKNOWN, 6), (1, 2, 3, 0x0800, 1))
    rules[0]["proto"], rules[0]["proto_mask"] = 6, 0xFF
    rules[1]["proto"], rules[1]["proto_mask"] = 1, 0xFF
    assert acl.compile(rules).match(packets).tolist() == [0, 2, 1]


def test_address_range_is_exact(twin_mode: str) -> None:
    rules = acl.wildcard_rules(1)
    rules["src_lo"], rules["src_hi"] = 0xC000020A, 0xC0000214  # 192.0.2.10-192.0.2.20
    srcs = [0xC0000209, 0xC000020A, 0xC000020F, 0xC0000214, 0xC0000215]
    packets = _packets_v4(*[(s, 0, 0, 0, 0) for s in srcs])
    assert acl.compile(rules).match(packets).tolist() == [-1, 0, 0, 0, -1]


def test_ipv6_range_across_64_bit_boundary(twin_mode: str) -> None:
    lo, hi = (5 << 64) | (U64 - 2), (7 << 64) | 3
    rules = acl.wildcard_rules(2, 6)
    rules[0]["dst_lo"], rules[0]["dst_hi"] = _words(lo), _words(hi)
    rules[1]["src_lo"], rules[1]["src_hi"] = _words(1 << 127), _words((1 << 128) - 1)
    addrs = [lo - 1, lo, (5 << 64) | U64, 6 << 64, (6 << 64) | 77, (7 << 64), hi, hi + 1]
    packets = np.zeros(len(addrs), acl.PACKET_V6_DTYPE)
    packets["dst"] = [_words(a) for a in addrs]
    assert acl.compile(rules).match(packets).tolist() == [-1, 0, 0, 0, 0, 0, 0, -1]
    packets["src"] = _words(1 << 127)
    assert acl.compile(rules).match(packets).tolist() == [1, 0, 0, 0, 0, 0, 0, 1]


def test_address_columns_as_16_byte_rows(twin_mode: str) -> None:
    rules4 = acl.wildcard_rules(1)
    rules4["dst_lo"] = rules4["dst_hi"] = 0xC0000201
    rows = np.zeros((2, 16), np.uint8)
    rows[:, 10:12] = 0xFF
    rows[0, 12:16] = [192, 0, 2, 1]
    rows[1, 12:16] = [192, 0, 2, 2]
    ports = np.zeros(2, np.uint16)
    hits = acl.compile(rules4).match_columns(rows, rows, ports, ports, np.zeros(2, np.uint8))
    assert hits.tolist() == [0, -1]
    rules6 = acl.wildcard_rules(1, 6)
    rules6["src_lo"] = rules6["src_hi"] = _words(0x20010DB8 << 96 | 1)
    v6 = np.zeros((2, 16), np.uint8)
    v6[:, 0:4] = [0x20, 0x01, 0x0D, 0xB8]
    v6[0, 15] = 1
    hits = acl.compile(rules6).match_columns(v6, v6, ports, ports, np.zeros(2, np.uint8))
    assert hits.tolist() == [0, -1]


def test_matcher_pickles(twin_mode: str) -> None:
    rules = acl.wildcard_rules(2)
    rules[0]["sport_lo"] = rules[0]["sport_hi"] = 53
    packets = _packets_v4((1, 1, 53, 1, 17), (1, 1, 54, 1, 17))
    matcher = acl.compile(rules)
    clone = pickle.loads(pickle.dumps(matcher))
    assert clone.match(packets).tolist() == matcher.match(packets).tolist() == [0, 1]
    assert clone.memory_bytes == matcher.memory_bytes > 0


def test_small_sets_have_small_tables() -> None:
    rules = acl.wildcard_rules(10)
    rules["dport_lo"] = rules["dport_hi"] = np.arange(10) + 80
    assert acl.compile(rules).memory_bytes < 16_384


# --- errors ----------------------------------------------------------------------------------


def test_bad_rule_arrays_are_errors() -> None:
    with pytest.raises(ClassifierError, match="dtype"):
        acl.compile(np.zeros(2, np.uint32))
    rules = acl.wildcard_rules(2)
    rules[1]["sport_lo"], rules[1]["sport_hi"] = 10, 9
    with pytest.raises(ClassifierError, match="rule 1: sport"):
        acl.compile(rules)
    rules6 = acl.wildcard_rules(1, 6)
    rules6["src_lo"], rules6["src_hi"] = (1, 5), (1, 4)
    with pytest.raises(ClassifierError, match="rule 0: src"):
        acl.compile(rules6)


def test_bad_packet_columns_are_errors() -> None:
    matcher = acl.compile(acl.wildcard_rules(1))
    good = np.zeros(2, np.uint32)
    with pytest.raises(ClassifierError, match="columns"):
        matcher.match({"src": good})
    with pytest.raises(ClassifierError, match="proto"):
        matcher.match_columns(good, good, good, good, np.array([0, 256]))
    with pytest.raises(ClassifierError, match="sport"):
        matcher.match_columns(good, good, np.array([-1, 0]), good, good)
    with pytest.raises(ClassifierError, match="length|rows"):
        matcher.match_columns(good, good, good, np.zeros(3, np.uint32), good)
    with pytest.raises(ClassifierError, match="IPv6"):
        acl.compile(acl.wildcard_rules(1, 6)).match_columns(good, good, good, good, good)


RULE_LINE = "@10.1.2.3/24\t192.0.2.0/24\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\t\n"


def test_classbench_rule_reader(tmp_path: Path) -> None:
    path = tmp_path / "rules"
    path.write_text(RULE_LINE + "\n" + "@0.0.0.0/0\t0.0.0.0/0\t1 : 2\t0 : 65535\t0x00/0x00\t\n")
    rules = acl.read_classbench_rules(path)
    assert len(rules) == 2 and rules.version == 4
    first = rules.rules[0]
    assert (first["src_lo"], first["src_hi"]) == (0x0A010200, 0x0A0102FF)  # host bits masked
    assert (first["sport_lo"], first["sport_hi"]) == (0, PORT_MAX)  # 0 : 65535 = wildcard
    second = rules.rules[1]
    assert (second["dport_lo"], second["dport_hi"]) == (0, PORT_MAX)
    assert (second["sport_lo"], second["sport_hi"], second["proto_mask"]) == (1, 2, 0)


@pytest.mark.parametrize(
    "line, message",
    [
        ("@10.1.2.3/33\t1.2.3.4/32\t0 : 1\t0 : 1\t0x06/0xFF\t\n", "prefix length 33"),
        ("@10.1.2.300/8\t1.2.3.4/32\t0 : 1\t0 : 1\t0x06/0xFF\t\n", "octet"),
        ("@10.1.2.3/8\t1.2.3.4/32\t5 : 1\t0 : 1\t0x06/0xFF\t\n", "port range 5 : 1"),
        ("@10.1.2.3/8\t1.2.3.4/32\t0 : 70000\t0 : 1\t0x06/0xFF\t\n", "port range"),
        ("10.1.2.3/8 garbage\n", "not a ClassBench rule"),
    ],
)
def test_bad_rule_files_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad_rules"
    path.write_text(RULE_LINE + line)
    with pytest.raises(acl.RuleFileError, match=f"bad_rules:2: .*{message}"):
        acl.read_classbench_rules(path)


def test_missing_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(acl.RuleFileError, match="cannot read"):
        acl.read_classbench_rules(tmp_path / "absent")
    with pytest.raises(acl.TraceFileError, match="cannot read"):
        acl.read_classbench_trace(tmp_path / "absent")


def test_classbench_trace_reader(tmp_path: Path) -> None:
    path = tmp_path / "trace"
    path.write_text("1923697128\t2273746465\t0\t1221\t6\t4294967295\t261\n1\t2\t3\t4\t17\t0\t0\n")
    trace = acl.read_classbench_trace(path)
    assert trace["src"].tolist() == [1923697128, 1] and trace["dport"].tolist() == [1221, 4]
    assert trace["proto"].tolist() == [6, 17]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1\t2\t3\t4\t6\t0\t0\n1\t2\t3\t4\n", "trace:2: expected 7 columns, found 4"),
        ("1\t2\t3\t4\t6\n1\t2\t3\t70000\t6\n", "trace:2: bad value '70000'"),
        ("1\t2\t3\t4\t6\n1\tx\t3\t4\t6\n", "trace:2: bad value 'x'"),
        ("1\t2\t3\t4\t256\n", "trace:1: bad value '256'"),
        ("1\t2\t3\t4\t6.5\n", "trace:1: bad value '6.5'"),
        ("-1\t2\t3\t4\t6\n", "trace:1: bad value '-1'"),
        ("1 2 3 4 6\n0x10 2 3 4 6\n", "trace:2: bad value '0x10'"),
    ],
)
def test_bad_trace_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "trace"
    path.write_text(text)
    with pytest.raises(acl.TraceFileError, match=message):
        acl.read_classbench_trace(path)


def test_firstmatch_reader(tmp_path: Path) -> None:
    path = tmp_path / "fm"
    path.write_text("3\n-1\n0\n")
    assert acl.read_firstmatch(path).tolist() == [3, -1, 0]
    path.write_text("3\nfour\n")
    with pytest.raises(acl.TraceFileError, match="fm:2"):
        acl.read_firstmatch(path)


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ["generic", "x86-64-v3"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_every_kernel_matches_linear_classifier(
    isa: str, case: tuple[int, np.ndarray, np.ndarray]
) -> None:
    """The portable C kernel and the AVX2 one (the default may be AVX-512) on the differential."""
    lookup = pytest.importorskip("classifier.acl._lookup")
    version, rules, packets = case
    with pytest.MonkeyPatch.context() as env:  # these kernels are the compiled module's
        env.delenv("CLASSIFIER_NO_EXTENSIONS", raising=False)
        matcher = acl.compile(rules)
    lookup.cap_isa(isa)
    try:
        hits = matcher.match(packets)
    finally:
        lookup.cap_isa(None)
    np.testing.assert_array_equal(hits, linear_first_match(rules, version, packets))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_table_invariants(case: tuple[int, np.ndarray, np.ndarray]) -> None:
    """The design note's invariants (classifier/tables.py), checked on random rule sets."""
    version, rules, _ = case
    t = acl.compile(rules).tables
    for f in range(t.field.shape[0]):
        starts = t.starts(f)
        assert starts[0] == 0 and (np.diff(starts.astype(object)) > 0).all()
        row = t.field[f]
        classes = t.classes(f)
        assert classes.size == starts.size == row[tables.NSTARTS]
        assert classes.max() < row[tables.NCLASSES]
        assert (classes[1:] != classes[:-1]).all()  # adjacent intervals of one class merged
    n_bits = int((t.rule_of >= 0).sum())
    assert (np.diff(t.rule_of[:n_bits]) >= 0).all()  # bit order is priority order
    for r in range(t.summary.shape[0]):
        dense = t.row_bits(r)
        assert (
            (dense != 0)
            == np.unpackbits(t.summary[r].view(np.uint8), bitorder="little").astype(bool)
        ).all()
        padding = np.unpackbits(dense.view(np.uint8), bitorder="little")[n_bits:]
        assert not padding.any()


def test_c_header_agrees_with_table_layout() -> None:
    header = (Path(acl.__file__).parent / "acl_lookup.h").read_text()
    defines = dict(re.findall(r"#define (ACL_\w+) (\S.*)", header))

    def value(name: str) -> int:
        expr = defines[name]
        for other, v in defines.items():
            expr = re.sub(rf"\b{other}\b", f"({v})", expr)
        return int(eval(expr, {"__builtins__": {}}))  # integer arithmetic on #define values

    assert value("ACL_FIELD_COLS") == len(tables.FIELD_COLUMNS)
    assert value("ACL_MAX_LEVELS") == tables.MAX_LEVELS
    assert value("ACL_FANOUT") == tables.FANOUT
    assert value("ACL_GROUP_COLS") == len(tables.GROUP_COLUMNS)
    for name in ("DEPTH", "NCLASSES", "GROUP", "STRIDE", "LEVEL_OFF", "LEVEL_LAST"):
        assert value(f"ACL_F_{name}") == getattr(tables, name)
    assert value("ACL_G_GTAB_OFF") == tables.GTAB_OFF


# --- the security-group engine's builder -----------------------------------------------------


def test_rule_rows_equal_the_array_form(twin_mode: str) -> None:
    rows = acl.RuleRows(4)
    rows.add(src=(0xC000020A, 0xC0000214), dport=(443, 443), proto=6, proto_mask=0xFF)
    rows.add(dport=(8 * 256, 8 * 256 + 255), proto=1, proto_mask=0xFF)
    rows.add()
    expected = acl.wildcard_rules(3)
    expected[0]["src_lo"], expected[0]["src_hi"] = 0xC000020A, 0xC0000214
    expected[0]["dport_lo"] = expected[0]["dport_hi"] = 443
    expected[0]["proto"], expected[0]["proto_mask"] = 6, 0xFF
    expected[1]["dport_lo"], expected[1]["dport_hi"] = 8 * 256, 8 * 256 + 255
    expected[1]["proto"], expected[1]["proto_mask"] = 1, 0xFF
    assert len(rows) == 3 and rows.to_array().tobytes() == expected.tobytes()
    hits = acl.compile(rows).match_columns(
        src=np.array([0xC000020B, 0xC000020B, 1], np.uint32),
        dport=np.array([443, 0x0800, PORT_UNKNOWN], np.uint32),
        proto=np.array([6, 1, 17]),
    )
    assert hits.tolist() == [0, 1, 2]


def test_rule_rows_ipv6(twin_mode: str) -> None:
    rows = acl.RuleRows(6)
    net = 0x20010DB8 << 96
    rows.add(src=(net, net | ((1 << 96) - 1)), dport=(22, 22), proto=6, proto_mask=0xFF)
    src = np.array([_words(net | 5), _words(net + (1 << 96))], np.uint64)
    hits = acl.compile(rows).match_columns(
        src=src, dport=np.array([22, 22]), proto=np.array([6, 6])
    )
    assert hits.tolist() == [0, -1]


def test_rule_rows_reject_values_out_of_range() -> None:
    with pytest.raises(ClassifierError, match="rule 0: src value"):
        acl.RuleRows(4).add(src=(0, 1 << 32))
    with pytest.raises(ClassifierError, match="proto"):
        acl.RuleRows(6).add(proto=300)
    with pytest.raises(ClassifierError, match="version"):
        acl.RuleRows(5)


def test_prefix_and_port_edges(twin_mode: str) -> None:
    """/0, /32, /128, ports 0, 1, 65535 and equal rules (the first one wins)."""
    rules = acl.wildcard_rules(5)
    rules[0]["src_lo"] = rules[0]["src_hi"] = 0xFFFFFFFF  # /32 at the top of the space
    rules[1]["dport_lo"] = rules[1]["dport_hi"] = 65535
    rules[2]["sport_lo"], rules[2]["sport_hi"] = 1, 1
    rules[3]["sport_lo"], rules[3]["sport_hi"] = 1, 1  # same as rule 2: never first
    rules[4]["dst_lo"], rules[4]["dst_hi"] = 0, 0  # /32 at the bottom
    rules[4]["proto"], rules[4]["proto_mask"] = 0, 0xFF
    packets = _packets_v4(
        (0xFFFFFFFF, 5, 0, 0, 6),
        (0xFFFFFFFE, 5, 0, 65535, 6),
        (1, 5, 1, 0, 6),
        (1, 0, 0, 0, 0),
        (1, 0, 0, 0, 1),
        (1, 1, 2, 0, 0),
    )
    assert acl.compile(rules).match(packets).tolist() == [0, 1, 2, 4, -1, -1]
    top = (1 << 128) - 1
    rules6 = acl.wildcard_rules(2, 6)
    rules6[0]["src_lo"] = rules6[0]["src_hi"] = _words(top)  # /128
    rules6[1]["src_lo"], rules6[1]["src_hi"] = _words(0), _words(top)  # ::/0, explicitly
    packets6 = np.zeros(3, acl.PACKET_V6_DTYPE)
    packets6["src"] = [_words(top), _words(top - 1), _words(0)]
    assert acl.compile(rules6).match(packets6).tolist() == [0, 1, 1]


def test_too_large_rule_sets_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from classifier.acl import build as compiler

    monkeypatch.setattr(compiler, "MAX_SWEEP_BYTES", 1024)
    rules = acl.wildcard_rules(200)
    rules["src_lo"] = rules["src_hi"] = np.arange(200) * 7
    with pytest.raises(ClassifierError, match="too large"):
        acl.compile(rules)
