"""Connection records (flows contract, section 3): `Classification.flows()` (fused pass and
unfused pieces, both twins) against `reference.StatefulReference.flows()`, and
`classify --flows` in every table format."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import reference
from classifier.cli import main
from classifier.engine import Engine
from classifier.engine.flows import FLOW_COLUMNS
from classifier.engine.pipeline import Classification, classify_pcap
from classifier.errors import UsageError
from classifier.packets import Packet, PacketBatch
from classifier.policy import Policy
from tests import strategies
from tests.conftest import EXAMPLES, ROOT

SAMPLES = ROOT / "pcaps"


def split_files(packets: list[Packet], cuts: list[int]) -> list[list[Packet]]:
    """The packets as consecutive files, each indexed from 0."""
    bounds = sorted({0, len(packets), *(c for c in cuts if c < len(packets))})
    files = [packets[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [[dataclasses.replace(p, index=i) for i, p in enumerate(f)] for f in files]


def run_flows(
    engine: Engine, files: list[list[Packet]], fused: bool, **kw: Any
) -> dict[str, np.ndarray]:
    run = Classification(engine, fused=fused, flows=True, **kw)
    run.paths = [f"f{k}.pcap" for k in range(len(files))]
    for number, packets in enumerate(files):
        batch = PacketBatch.from_packets(packets)
        for start in range(0, len(packets), 6):
            run.classify_batch(batch.slice(start, start + 6), run.paths[number], number)
    return run.flows()


def oracle_flows(policy: Policy, files: list[list[Packet]], **kw: Any) -> dict[str, list[Any]]:
    oracle = reference.StatefulReference(policy, **kw)
    for number, packets in enumerate(files):
        oracle.file = f"f{number}.pcap"
        oracle.run(packets)
    rows = oracle.flows()
    return {
        name: [(-1 if row[name] is None else row[name]) for row in rows] for name, _ in FLOW_COLUMNS
    }


def assert_flows_equal(got: dict[str, np.ndarray], want: dict[str, list[Any]]) -> None:
    assert list(got) == [name for name, _ in FLOW_COLUMNS]
    for name, kind in FLOW_COLUMNS:
        column = got[name]
        assert column.dtype == {"int": np.int64, "bool": np.bool_, "text": object}[kind], name
        assert column.tolist() == want[name], name


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    scenario=strategies.policy_and_sequences(max_size=40),
    cuts=st.lists(st.integers(1, 40), max_size=2),
    limit=st.sampled_from([None, 1, 2, 3]),
)
def test_flows_equal_the_reference(
    twin_mode: str, scenario: tuple[Policy, list[Packet]], cuts: list[int], limit: int | None
) -> None:
    """Timeouts, FIN/RST, fragments, related errors (never counted), several files, and
    evictions under tiny limits."""
    policy, packets = scenario
    files = split_files(packets, cuts)
    engine = Engine(policy)
    want = oracle_flows(policy, files, max_connections=limit)
    kw = {} if limit is None else {"max_connections": limit}
    for fused in (True, False):
        assert_flows_equal(run_flows(engine, files, fused, **kw), want)


def test_a_handshake_is_one_record(twin_mode: str) -> None:
    """The contract's example: three packets each way, closed with FIN, open at the end."""
    policy = reference_policy()
    client, web = "203.0.113.7", "10.0.1.10"
    steps = [(client, web, 0x02), (web, client, 0x12), (client, web, 0x10)]
    steps += [(web, client, 0x18), (client, web, 0x11), (web, client, 0x11)]
    packets = [
        Packet(
            ts_ns=1_700_000_000_000_000_000 + k * 60_000_000,
            index=k,
            ip_version=4,
            src=reference_address(src),
            dst=reference_address(dst),
            protocol=6,
            sport=51234 if src == client else 80,
            dport=80 if src == client else 51234,
            tcp_flags=flags,
            wire_len=60 + k,
        )
        for k, (src, dst, flags) in enumerate(steps)
    ]
    packets.append(dataclasses.replace(packets[0], ts_ns=packets[-1].ts_ns + 2 * 10**9, dport=9))
    files = [packets]
    flows = run_flows(Engine(policy), files, fused=True)
    assert flows["initiator_packets"][0] == 3 and flows["responder_packets"][0] == 3
    assert flows["initiator_bytes"][0] == 60 + 62 + 64
    assert flows["fin_rst"][0] and not flows["midstream"][0]
    assert flows["end"][0] == "open"
    assert flows["last_ns"][0] == packets[5].ts_ns
    assert_flows_equal(flows, oracle_flows(policy, files))


def reference_policy() -> Policy:
    from classifier.policy import load_policy_data

    return load_policy_data(
        {
            "security_groups": [
                {
                    "id": "sg-web",
                    "rules": [
                        {"id": "web-http", "direction": "ingress", "protocol": "tcp",
                         "multiport": "80"},
                    ],
                }
            ],
            "instances": [{"id": "web-1", "ips": ["10.0.1.10"], "security_groups": ["sg-web"]}],
        },
        "web",
    )  # fmt: skip


def reference_address(text: str) -> Any:
    import ipaddress

    return ipaddress.ip_address(text)


def test_stateless_has_no_flows(twin_mode: str) -> None:
    engine = Engine(reference_policy())
    result = classify_pcap(engine, SAMPLES / "web.pcap", stateful=False)
    with pytest.raises(UsageError):
        result.flows()
    with pytest.raises(UsageError):
        Classification(engine, stateful=False).flows()
    with pytest.raises(UsageError):
        Classification(engine, flows=False).flows()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_classify_flows_in_every_format_equals_the_api(tmp_path: Path) -> None:
    policy = EXAMPLES / "web-db.yaml"
    captures = [str(SAMPLES / name) for name in ("web.pcap", "fragments.pcap", "icmp-errors.pcap")]
    engine = Engine(_load(policy))
    api = classify_pcap(engine, captures).flows()
    assert len(api["index"]) > 5
    texts = {}
    for ext in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"flows.{ext}"
        if ext == "parquet":
            pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (the parquet extra)")
        code, _, err = run_cli(
            "classify", "--policy", str(policy), *captures, "--flows", str(out), "-q"
        )
        assert code == 0, err
        texts[ext] = out
    with open(texts["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [name for name, _ in FLOW_COLUMNS]
    for name, kind in FLOW_COLUMNS:
        want = api[name].tolist()
        cells = [row[name] for row in rows]
        if kind == "int":
            assert cells == [("" if v < 0 else str(v)) for v in want], name
        elif kind == "bool":
            assert cells == [("true" if v else "false") for v in want], name
        else:
            assert cells == want, name
    lines = [json.loads(line) for line in texts["jsonl"].read_text().splitlines()]
    for name, _ in FLOW_COLUMNS:
        want = [
            None if (isinstance(v, int) and v < 0) or v == "" else v for v in api[name].tolist()
        ]
        assert [line[name] for line in lines] == want, name
    if "parquet" in texts:
        import pyarrow.parquet as pq

        table = pq.read_table(texts["parquet"]).to_pydict()
        assert list(table) == [name for name, _ in FLOW_COLUMNS]
        for name, _ in FLOW_COLUMNS:
            want = [
                None if (isinstance(v, int) and v < 0) or v == "" else v for v in api[name].tolist()
            ]
            assert table[name] == want, name


def _load(path: Path) -> Policy:
    from classifier import load_policy

    return load_policy(path)


def test_flows_with_stateless_is_bad_input(tmp_path: Path) -> None:
    code, _, err = run_cli(
        "classify", "--policy", str(EXAMPLES / "web-db.yaml"), str(SAMPLES / "web.pcap"),
        "--stateless", "--flows", str(tmp_path / "f.csv"),
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --flows: ")
    assert not (tmp_path / "f.csv").exists()


def test_flows_to_pandas() -> None:
    pd = pytest.importorskip("pandas", reason="flows_to_pandas needs pandas (the pandas extra)")
    result = classify_pcap(Engine(_load(EXAMPLES / "web-db.yaml")), SAMPLES / "web.pcap")
    frame = result.flows_to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [name for name, _ in FLOW_COLUMNS]
    assert len(frame) == len(result.flows()["index"])
