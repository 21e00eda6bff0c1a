"""A newcomer's first hour (issue 14), point by point, and the output formats: exit code,
stdout, stderr and the files left behind, for each."""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier.cli import main
from classifier.engine import Classification, Engine
from classifier.engine.columns import PACKET_COLUMNS
from classifier.errors import PcapError
from classifier.policy import load_policy
from tests.conftest import EXAMPLES, ROOT, SAMPLE_PCAPS

WEB_DB = str(EXAMPLES / "web-db.yaml")
WEB = str(SAMPLE_PCAPS / "web.pcap")
SAMPLES = sorted(str(path) for path in SAMPLE_PCAPS.glob("*.pcap"))


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def command(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """`sgclassify ARGV` as a separate process (real standard output)."""
    return subprocess.run(
        [sys.executable, "-m", "classifier", *argv],
        capture_output=True,
        cwd=ROOT,
        check=False,
        input=stdin,
    )


# --- '-' is standard output -------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--packets", "--json", "--report"])
def test_dash_is_standard_output_for_classify(tmp_path: Path, option: str) -> None:
    done = command("classify", "--policy", WEB_DB, "-q", option, "-", WEB)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    if option == "--packets":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 77 and list(rows[0]) == [name for name, _ in PACKET_COLUMNS]
    elif option == "--json":
        assert json.loads(text)["packets"] == 77  # the document alone: no printed summary
    else:
        assert text.startswith("<!DOCTYPE html>") and "sg-summary" in text
    assert not Path(ROOT / "-").exists()


def test_dash_for_packets_and_lint(tmp_path: Path) -> None:
    done = command("packets", WEB, "--csv", "-")
    assert done.returncode == 0 and len(done.stdout.decode().splitlines()) == 78
    code, out, _ = run("lint", WEB_DB, "--json", "-")
    assert code == 0 and "findings" in json.loads(out)
    assert not Path(ROOT / "-").exists()


def test_only_one_output_may_be_dash() -> None:
    code, out, err = run("classify", "--policy", WEB_DB, "--json", "-", "--packets", "-", WEB)
    assert code == 2 and out == ""
    assert err == "error: only one output may be '-' (standard output); 2 are\n"


@pytest.mark.parametrize("extension", ["csv", "jsonl", "parquet"])
def test_packets_formats_hold_the_same_rows(tmp_path: Path, extension: str) -> None:
    if extension == "parquet":
        pytest.importorskip("pyarrow", reason="Parquet outputs need the parquet extra (pyarrow)")
    out = tmp_path / f"packets.{extension.upper()}"  # the extension is case-insensitive
    code, _, err = run("classify", "--policy", WEB_DB, "-q", "--packets", str(out), *SAMPLES)
    assert code == 0, err
    reference = tmp_path / "reference.csv"
    run("classify", "--policy", WEB_DB, "-q", "--packets", str(reference), *SAMPLES)
    with reference.open(newline="") as stream:
        want = list(csv.DictReader(stream))
    kinds = dict(PACKET_COLUMNS)
    typed = [
        {k: None if v == "" else int(v) if kinds[k] == "int" else v for k, v in row.items()}
        for row in want
    ]
    if extension == "csv":
        with out.open(newline="") as stream:
            assert list(csv.DictReader(stream)) == want
    elif extension == "jsonl":
        lines = out.read_bytes().split(b"\n")
        assert lines[-1] == b"" and len(lines) == len(want) + 1
        got = [json.loads(line) for line in lines[:-1]]
        assert got == typed and all(list(row) == list(kinds) for row in got)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        types = {"int": pa.int64(), "text": pa.string(), "bool": pa.bool_()}
        assert table.schema.names == list(kinds)
        assert [table.schema.field(n).type for n in kinds] == [types[k] for k in kinds.values()]
        assert table.to_pylist() == typed


def test_parquet_streams_in_row_groups(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="Parquet outputs need the parquet extra (pyarrow)")
    import numpy as np
    import pyarrow.parquet as pq

    from classifier.report.tables import ROW_GROUP_ROWS, open_table

    path = tmp_path / "t.parquet"
    schema = (("n", "int"), ("flag", "bool"), ("name", "text"))
    batches = 5
    with open_table(str(path), schema) as table:
        for k in range(batches):
            n = np.arange(k * ROW_GROUP_ROWS, (k + 1) * ROW_GROUP_ROWS, dtype=np.int64)
            labels = np.array(["", "a", "b,c"], dtype=object)
            table.write({"n": n, "flag": n % 2 == 0, "name": (n % 3, labels)})
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == batches * ROW_GROUP_ROWS and meta.num_row_groups == batches
    column = pq.read_table(path).column("name").to_pylist()
    assert column[:3] == [None, "a", "b,c"]


def test_parquet_without_pyarrow_is_bad_input_before_reading(tmp_path: Path) -> None:
    """Run with pyarrow made unimportable (as on a machine without the parquet extra)."""
    out = tmp_path / "p.parquet"
    code = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
        "from classifier.cli import main\n"
        "raise SystemExit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "classify", "--policy", WEB_DB, "--packets", str(out),
         str(tmp_path / "missing.pcap")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"error: --packets {out}: writing Parquet needs pyarrow: "
        "pip install 'sg-classifier[parquet]'\n"
    )  # named before the capture, which does not even exist
    assert not out.exists()


# --- the per-packet table ----------------------------------------------------------------------


def test_packets_rows_carry_the_record(tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    code, _, err = run("classify", "--policy", WEB_DB, "-q", "--packets", str(out), *SAMPLES)
    assert code == 0, err
    with out.open(newline="") as stream:
        rows = {(Path(r["file"]).name, int(r["index"])): r for r in csv.DictReader(stream)}
    first = rows[("web.pcap", 0)]
    assert first["src"].startswith("203.0.113.") and first["protocol"] == "6"
    assert first["dport"] in ("80", "443") and int(first["ts_ns"]) > 1_700_000_000 * 10**9
    assert int(first["wire_len"]) > 0 and first["icmp_type"] == ""
    # a joined later fragment: allowed as established with its first fragment's ports, but
    # reports no ports of its own
    later = rows[("fragments.pcap", 2)]
    assert later["reason"] == "established" and later["sport"] == later["dport"] == ""
    # a not-ip record: no addresses, no protocol
    arp = rows[("misc.pcap", 0)]
    assert arp["verdict"] == "not-ip" and arp["src"] == arp["protocol"] == arp["ip_version"] == ""
    # the same row as the decoder's
    code, _, _ = run("packets", str(SAMPLE_PCAPS / "misc.pcap"), "--csv", str(tmp_path / "d.csv"))
    with (tmp_path / "d.csv").open(newline="") as stream:
        decoded = list(csv.DictReader(stream))
    for row in decoded:
        mine = rows[("misc.pcap", int(row["index"]))]
        for name in ("ts_ns", "wire_len", "ip_version", "src", "dst", "protocol", "dport"):
            assert mine[name] == row[name], name


def test_packets_reason_for_malformed_rows() -> None:
    code, out, _ = run("packets", str(SAMPLE_PCAPS / "misc.pcap"))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["reason"] == "" and list(rows[0])[-1] == "reason"
    malformed = [row for row in rows if row["status"] == "malformed"]
    assert [row["reason"] for row in malformed] == [
        "IPv4 header length below 20 bytes",
        "IP version contradicts the link layer",
    ]


# --- outputs appear whole or not at all ---------------------------------------------------------


def test_a_failed_run_leaves_no_output_and_keeps_the_old_file(tmp_path: Path) -> None:
    old = tmp_path / "summary.json"
    old.write_text("the previous summary\n")
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture" * 20)
    code, out, err = run("classify", "--policy", WEB_DB, "--json", str(old), WEB, str(garbage))
    assert code == 2 and out == "" and f"error: {garbage}: not a pcap" in err
    assert old.read_text() == "the previous summary\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pcap", "summary.json"]


def test_output_in_a_missing_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "p.csv"
    code, _, err = run("classify", "--policy", WEB_DB, "--packets", str(out), WEB)
    assert code == 2 and err.startswith(f"error: {out}: cannot write: no such directory")


# --- typos and --strict -----------------------------------------------------------------------

TYPO_POLICY = """\
security_groups:
  - id: g
    rules:
      - {id: r1, direction: ingress, actoin: deny, protocol: tcp}
instances:
  - {id: vm, ips: [10.0.0.1], security_groups: [g]}
"""


def test_hint_stays_next_to_the_error_it_explains(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        TYPO_POLICY.replace(
            "      - {id: r1,",
            '      - {id: r2, direction: ingress, protocl: tcp, multiport: "80"}\n      - {id: r1,',
        )
    )
    code, out, err = run("validate", str(policy))
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "multiport" in errors[0] and "'protocl': did you mean 'protocol'?" in errors[0]
    assert "warning:" in err and "'actoin' ignored (did you mean 'action'?)" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "{policy}"],
        ["check", "--policy", "{policy}", "--src", "1.2.3.4", "--dst", "vm", "--proto", "tcp"],
        ["classify", "--policy", "{policy}", WEB],
        ["lint", "{policy}"],
        ["exposure", "--policy", "{policy}", WEB],
        ["diff", "--old", "{policy}", "--new", WEB_DB, WEB],
    ],
)
def test_strict_makes_warnings_errors(tmp_path: Path, argv: list[str]) -> None:
    policy = tmp_path / "typo.yaml"
    policy.write_text(TYPO_POLICY)
    args = [a.replace("{policy}", str(policy)) for a in argv]
    code, _, err = run(*args)
    assert code in (0, 1), err  # a warning alone does not fail (diff: 1 = packets change)
    assert "warning:" in err and "'actoin'" in err
    code, out, err = run(*args, "--strict")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {policy}: group g rule r1: unknown field 'actoin' ignored")
    assert err.rstrip().endswith("(--strict: warnings are errors)")


def test_strict_fails_on_capture_warnings_after_writing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    summary = tmp_path / "s.json"
    code, out, err = run("classify", "--policy", WEB_DB, "--json", str(summary), str(empty))
    assert code == 0 and f"warning: {empty}: the capture holds no records" in err
    code, out, err = run(
        "classify", "--policy", WEB_DB, "--json", str(summary), "--strict", str(empty)
    )
    assert code == 2 and "(--strict: warnings are errors)" in err
    assert json.loads(summary.read_text())["files"][0]["warnings"]


# --- captures checked before the run; every file listed --------------------------------------


def test_not_a_capture_prints_no_summary_of_zeros(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes, not a capture\n")
    code, out, err = run("classify", "--policy", WEB_DB, str(text))
    assert code == 2 and out == ""
    assert err == f"error: {text}: not a pcap or pcapng file (magic number 74686573)\n"


def test_every_file_is_listed_with_its_status(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture" * 20)
    run_ = Classification(Engine(load_policy(WEB_DB)))
    with pytest.raises(PcapError):
        for _ in run_.run([WEB, str(garbage), SAMPLES[0]]):
            pass
    files = run_.summary()["files"]
    assert [(f["path"], f["status"]) for f in files] == [
        (WEB, "ok"),
        (str(garbage), "unreadable"),
        (SAMPLES[0], "not read"),
    ]
    assert "not a pcap" in files[1]["warnings"][0]
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(WEB).read_bytes()[:-30])
    code, _, err = run("classify", "--policy", WEB_DB, "--json", str(tmp_path / "s.json"),
                       WEB, str(cut))  # fmt: skip
    files = json.loads((tmp_path / "s.json").read_text())["files"]
    assert code == 0 and [f["status"] for f in files] == ["ok", "damaged"]
    assert files[0]["first_ns"] <= files[0]["last_ns"]


# --- combining captures ---------------------------------------------------------------------------


def test_repeated_capture_warns(tmp_path: Path) -> None:
    copy = tmp_path / "copy.pcap"
    copy.write_bytes(Path(WEB).read_bytes())
    link = tmp_path / "link.pcap"
    os.symlink(WEB, link)
    summary = tmp_path / "s.json"
    code, out, err = run(
        "classify", "--policy", WEB_DB, "--json", str(summary), WEB, WEB, str(copy), str(link)
    )
    assert code == 0
    assert f"warning: {WEB}: the same path as {WEB!r}, given earlier" in err
    assert f"warning: {copy}: a copy (the same bytes) as {WEB!r}" in err
    assert f"warning: {link}: the same file as {WEB!r}" in err
    files = json.loads(summary.read_text())["files"]
    assert [len(f["warnings"]) for f in files] == [0, 1, 1, 1]


def test_a_gap_of_more_than_a_day_warns(tmp_path: Path) -> None:
    """misc.pcap is rewritten to start 40 days after web.pcap ends."""
    data = bytearray(Path(SAMPLE_PCAPS / "misc.pcap").read_bytes())
    shifted = tmp_path / "later.pcap"
    offset = 24
    while offset + 16 <= len(data):
        seconds = int.from_bytes(data[offset : offset + 4], "little") + 40 * 86400
        data[offset : offset + 4] = seconds.to_bytes(4, "little")
        offset += 16 + int.from_bytes(data[offset + 8 : offset + 12], "little")
    shifted.write_bytes(bytes(data))
    summary = tmp_path / "s.json"
    code, out, err = run("classify", "--policy", WEB_DB, "--json", str(summary), WEB, str(shifted))
    assert code == 0
    assert f"warning: {shifted}: starts 40.0 days after {WEB!r} ends" in err
    assert "starts 40.0 days" in json.loads(summary.read_text())["files"][1]["warnings"][0]
    assert "s of traffic (39 d 23 h)" in out  # the time span in words too
    code, _, err = run("classify", "--policy", WEB_DB, *SAMPLES)
    assert "warning" not in err  # the samples are an hour apart


# --- connections per rule add up ---------------------------------------------------------------


def test_connections_per_rule_add_up_to_the_total(tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    code, out, _ = run("classify", "--policy", WEB_DB, "--json", str(summary), *SAMPLES)
    document = json.loads(summary.read_text())
    total = document["connections"]["total"]
    assert total == 22 == sum(rule["connections"] for rule in document["rules"])
    assert "conns created" in out and "22 created" in out


# --- small things -----------------------------------------------------------------------------


def test_bare_command_prints_usage_and_exits_2() -> None:
    done = command()
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().startswith("usage: sgclassify")


def test_counts_in_words(tmp_path: Path) -> None:
    policy = tmp_path / "one.yaml"
    policy.write_text(TYPO_POLICY.replace("actoin", "action"))
    code, out, _ = run("validate", str(policy))
    assert out == "ok: 1 group, 1 rule, 1 instance\n"
    code, out, _ = run("classify", "--policy", WEB_DB, WEB)
    assert out.startswith("77 packets,") and "in 1 capture," in out


def test_top_denied_shows_icmp_type_and_code(tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    code, out, _ = run(
        "classify",
        "--policy",
        WEB_DB,
        "--json",
        str(summary),
        str(SAMPLE_PCAPS / "icmp-errors.pcap"),
    )
    rows = json.loads(summary.read_text())["top_denied"]
    icmp = [row for row in rows if row["protocol"] == "icmp"]
    assert icmp and all(row["icmp_type"] is not None and row["dport"] is None for row in icmp)
    assert f"type {icmp[0]['icmp_type']} code {icmp[0]['icmp_code']}" in out


def test_check_speaks_the_policy_vocabulary() -> None:
    code, out, err = run(
        "check", "--policy", WEB_DB, "--src", "db-1", "--dst", "web-1", "--proto", "ICMP",
        "--icmp-type", "echo",
    )  # fmt: skip
    assert code == 0, err
    assert "note: --src db-1 is 10.0.2.20" in out and "note: --dst web-1 is 10.0.1.10" in out
    assert "web-icmp" in out and out.rstrip().endswith("verdict: allow")
    code, _, err = run(
        "check", "--policy", WEB_DB, "--src", "db-1", "--dst", "web-1", "--proto", "icmp",
        "--icmp-type", "echo", "--icmp-code", "3",
    )  # fmt: skip
    assert code == 2 and err == "error: --icmp-code: the type name 'echo' fixes the code already\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--src", "1.2.3.4", "--dst", "vm9", "--proto", "tcp"],
         "--dst: 'vm9' is neither an IP address nor an instance id of the policy"),
        (["--src", "1.2.3.4", "--dst", "web-1", "--proto", "all"],
         "--proto: 'all' is not a packet's protocol"),
        (["--src", "1.2.3.4", "--dst", "web-1", "--proto", "tcp", "--dport", "70000"],
         "--dport: '70000' is not a port (0..65535)"),
        (["--src", "1.2.3.4", "--dst", "web-1", "--proto", "icmp", "--icmp-type", "ping"],
         "--icmp-type: 'ping' is neither a type number 0..255 nor an ICMP type name"),
        (["--src", "1.2.3.4", "--dst", "web-1", "--proto", "udp", "--icmp-type", "3"],
         "--icmp-type/--icmp-code: apply to icmp and icmpv6, not to udp"),
    ],
)  # fmt: skip
def test_check_errors_have_one_format(args: list[str], message: str) -> None:
    code, out, err = run("check", "--policy", WEB_DB, *args)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1


# --- Ctrl-C ---------------------------------------------------------------------------------------


def _interrupt(tmp_path: Path, delay: float, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `sgclassify ARGV` as the console script does (`from classifier.cli import main`,
    then `sys.exit(main())`), send SIGINT `delay` s after the command modules start to load,
    and wait. What follows that moment: the command modules load (under the start-up handler
    of `classifier.cli`), then numpy and the engine, the policy compiles. Out of the package's
    reach: the interpreter's own start and the import machinery's steps before the package's
    first line runs (on a loaded machine these can take longer than any fixed delay, so the
    clock starts at an audit event: the import of `classifier.cli.main`, which
    `classifier.cli` begins once its handler is set)."""
    script = (
        "import sys\n"
        "def _announce(event, args):\n"
        "    if event == 'import' and args[0] == 'classifier.cli.main':\n"
        "        sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
        "sys.addaudithook(_announce)\n"
        "from classifier.cli import main\n"
        "sys.exit(main())\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, *argv],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stderr is not None
    assert process.stderr.readline() == "ready\n"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture that takes seconds to classify with --packets, well past the longest delay
    below (benchmarks/synth.py; 2M records, 160 MB, written once for the module): at 600,000
    records a run took 1.2 s on the Intel host, so the Ctrl-C of 1.5 s came after the end."""
    from benchmarks import synth
    from benchmarks.end_to_end import clients_and_servers

    clients, servers = clients_and_servers()
    path = tmp_path_factory.mktemp("ctrl-c") / "big.pcap"
    synth.write_capture(str(path), 2_000_000, clients, servers, fmt="pcap", seed=3)
    return path


@pytest.mark.parametrize("delay", [0.02, 0.1, 0.3, 0.6, 1.5])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path, big_capture: Path, delay: float) -> None:
    capture = big_capture
    policy = tmp_path / "policy.json"
    from benchmarks.end_to_end import build_policy_data

    policy.write_text(json.dumps(build_policy_data()))
    done = _interrupt(
        tmp_path,
        delay,
        ["classify", "--policy", str(policy), "--packets", "p.csv", "--json", "s.json",
         str(capture)],
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines()[-1] == "interrupted"
    # no partial output: neither the files nor their temporary twins
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.json"]


def test_interrupt_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    run("validate", WEB_DB)
    assert signal.getsignal(signal.SIGINT) is before


def test_importing_the_package_leaves_ctrl_c_alone() -> None:
    code = (
        "import signal, classifier, classifier.cli\n"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "
        "signal.getsignal(signal.SIGINT)\n"
    )
    # The child starts with SIGINT at its default whatever this process's disposition is (a
    # process started with SIGINT ignored keeps it ignored, and Python then installs no
    # handler: seen once in the sanitizer run, under load, from a disposition set elsewhere).
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )


class _InterruptedInDestructor:
    """A Ctrl-C that lands while an object is being freed (Dask's futures release
    themselves in `__del__`): Python cannot raise it there."""

    def __del__(self) -> None:
        raise KeyboardInterrupt


def test_a_ctrl_c_a_destructor_swallowed_still_ends_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def swallowing(args: object, out: object, err: object) -> int:
        _InterruptedInDestructor()  # freed at once: its KeyboardInterrupt is unraisable
        return 0

    validate = importlib.import_module("classifier.cli.validate")
    monkeypatch.setattr(validate, "run", swallowing)
    hook = sys.unraisablehook
    assert run("validate", WEB_DB) == (130, "", "interrupted\n")
    assert sys.unraisablehook is hook


def deliver_ctrl_c() -> None:
    """What Python does when SIGINT arrives: call the handler in place."""
    handler = signal.getsignal(signal.SIGINT)
    assert callable(handler)
    handler(signal.SIGINT, None)


def test_the_cluster_driver_remembers_a_ctrl_c_under_the_commands_handler() -> None:
    from classifier.scale.runner import _check_interrupt, _sticky_interrupts

    def raising(signum: int, frame: object) -> None:  # the command's (`_interrupt_once`)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    def counting(signum: int, frame: object) -> None:  # a caller's that does not raise
        calls.append(signum)

    calls: list[int] = []
    before = signal.signal(signal.SIGINT, raising)
    try:
        with _sticky_interrupts():
            _check_interrupt()
            with pytest.raises(KeyboardInterrupt):
                deliver_ctrl_c()
            with pytest.raises(KeyboardInterrupt):  # dropped where it landed, raised here
                _check_interrupt()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # the handler's own choice
        signal.signal(signal.SIGINT, counting)
        with _sticky_interrupts():
            deliver_ctrl_c()
            _check_interrupt()  # nothing raised, nothing remembered
        assert calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is counting
    finally:
        signal.signal(signal.SIGINT, before)
