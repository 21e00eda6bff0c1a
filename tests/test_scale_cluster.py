"""Real processes: `classify --workers 2` (a local cluster the command starts and stops) and a
cluster of `dask scheduler` + two `dask worker` processes on 127.0.0.1 started here and
stopped by pid at the end.

The command line's bytes (standard output, standard error, `--json`, `--packets`, the exit
code) equal one process's; a worker killed mid-run costs only time (the same bytes, and one
warning naming it); Ctrl-C and SIGTERM stop the run with `interrupted`, exit 130, no partial
output and no process left (on `--scheduler`, the cluster stays up with nothing of ours on
it); a worker of another version stops it with one line; without Dask, one line naming the
extra. The failures that take the contract's 10 s are in test_scale_cluster_long.py
(`make cluster-test`).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.cluster import (
    BIN,
    RealCluster,
    Scenario,
    alive,
    assert_same_cli,
    big_capture,
    cli_run,
    dask_or_skip,
    descendants,
    real_cluster,
    scenarios,
)
from tests.conftest import EXAMPLES, PCAPS_DEV, SAMPLE_PCAPS

# real processes: the compiled pass of `make test` only (the twins would take minutes here)
pytestmark = pytest.mark.slow
FEW = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
SOME = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
WEB_DB = str(EXAMPLES / "web-db.yaml")
WEB_PCAP = str(SAMPLE_PCAPS / "web.pcap")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    with real_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A synthetic capture of 300,000 packets among 100 instances, and its 500-rule policy."""
    sys.path.insert(0, str(EXAMPLES.parent))
    return big_capture(tmp_path_factory.mktemp("big"), 300_000, seed=16, flows=5000)


def compare_cli(scenario: Scenario, *extra: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scenario.write(Path(tmp))
        one = cli_run(scenario, Path(tmp))
        assert_same_cli(one, cli_run(scenario, Path(tmp), *extra))


@FEW
@given(scenario=scenarios(blocksizes=(1, 200, 2000)))
def test_workers_2_give_the_bytes_of_one_process(scenario: Scenario) -> None:
    dask_or_skip()
    compare_cli(scenario, "--workers", "2", "--blocksize", str(scenario.blocksize))


@SOME
@given(scenario=scenarios(blocksizes=(1, 90, 300, 2000)))
def test_a_real_cluster_gives_the_bytes_of_one_process(
    cluster: RealCluster, scenario: Scenario
) -> None:
    compare_cli(scenario, "--scheduler", cluster.address, "--blocksize", str(scenario.blocksize))


def test_samples_and_damaged_captures_on_the_real_cluster(
    cluster: RealCluster, tmp_path: Path
) -> None:
    paths = [str(p) for p in sorted(SAMPLE_PCAPS.glob("*.pcap"))]
    damaged = PCAPS_DEV / "suricata_tls_DER-incomplete-header.pcap"  # damage in its 7th record
    if damaged.exists():
        paths.append(str(damaged))
    scenario = Scenario(None, [], [], blocksize=1024, policy_path=WEB_DB)  # type: ignore[arg-type]
    scenario.paths = paths
    one = cli_run(scenario, tmp_path)
    assert one.code == 0 and one.packets and one.json
    assert_same_cli(
        one, cli_run(scenario, tmp_path, "--scheduler", cluster.address, "--blocksize", "2K")
    )


def test_capture_warnings_and_strict_on_the_real_cluster(
    cluster: RealCluster, tmp_path: Path
) -> None:
    """The warnings of the captures' combination (the same capture twice, one without
    records) and `--strict` (exit 2 after writing the outputs): as in one process."""
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    scenario = Scenario(None, [], [], blocksize=1024, policy_path=WEB_DB)  # type: ignore[arg-type]
    scenario.paths = [WEB_PCAP, str(empty), WEB_PCAP]
    for strict in ((), ("--strict",)):
        one = cli_run(scenario, tmp_path, *strict)
        assert one.code == (2 if strict else 0) and one.json
        assert "the capture holds no records" in one.err and "twice" in one.err, one.err
        scaled = cli_run(scenario, tmp_path, *strict, "--scheduler", cluster.address)
        assert_same_cli(one, scaled)


def test_connection_records_are_one_process_only(tmp_path: Path) -> None:
    """`--flows` with a cluster: exit 2, one line, before any cluster starts."""
    dask_or_skip()
    from classifier.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["classify", "--policy", WEB_DB, WEB_PCAP, "--workers", "2", "--flows"]
    code = main([*argv, str(tmp_path / "flows.csv")], out, err)
    assert code == 2 and err.getvalue().count("\n") == 1, err.getvalue()
    assert err.getvalue().startswith("error: --flows: ") and not list(tmp_path.iterdir())


def test_a_scaled_classification_holds_no_tracker_and_refuses_single_batches() -> None:
    """On a cluster the lanes hold the state: the driver's Classification has no tracker
    of its own (no table allocated for nothing), and a lone batch, which would be judged
    without the run's state, is refused (one process's API)."""
    dask_or_skip()
    from classifier.engine import Classification, Engine
    from classifier.errors import UsageError
    from classifier.packets import PacketBatch
    from classifier.policy import load_policy

    run = Classification(Engine(load_policy(WEB_DB)), workers=2)
    assert run.tracker is None and run.stateful
    with pytest.raises(UsageError, match="use run"):
        run.classify_batch(PacketBatch.from_packets([]))


def test_the_connection_limit_on_a_cluster(cluster: RealCluster, tmp_path: Path) -> None:
    """scale.md section 2, the second exception: below the limit the bytes of one process;
    when the limit forgets connections, the lanes share it and one warning says the results
    are not those of one process."""
    scenario = Scenario(None, [], [], blocksize=1024, policy_path=WEB_DB)  # type: ignore[arg-type]
    scenario.paths = [str(p) for p in sorted(SAMPLE_PCAPS.glob("*.pcap"))]
    on_cluster = ("--scheduler", cluster.address, "--blocksize", "2K")
    roomy = ("--max-connections", "1000")
    assert_same_cli(
        cli_run(scenario, tmp_path, *roomy), cli_run(scenario, tmp_path, *roomy, *on_cluster)
    )
    one = cli_run(scenario, tmp_path, "--max-connections", "1")
    assert json.loads(one.json or b"{}")["connections"]["evicted"] > 0
    scaled = cli_run(scenario, tmp_path, "--max-connections", "1", *on_cluster)
    assert scaled.code == 0, scaled.err
    connections = json.loads(scaled.json or b"{}")["connections"]
    assert connections["limit"] == 1 and connections["evicted"] > 0
    notes = [line for line in scaled.err.splitlines() if "connection limit" in line]
    assert len(notes) == 1 and "not those of one process" in notes[0], scaled.err


def test_input_a_cluster_cannot_cut_is_one_line_before_any_cluster(tmp_path: Path) -> None:
    """Standard input, a pipe, a compressed capture, and --filter: exit 2, one line, no
    output, and nothing started (a cluster would take seconds: the whole check takes less)."""
    import gzip

    dask_or_skip()
    from classifier.cli import main

    fifo = tmp_path / "pipe.pcap"
    os.mkfifo(fifo)
    packed = tmp_path / "web.pcap.gz"
    packed.write_bytes(gzip.compress(Path(WEB_PCAP).read_bytes()))
    cases = {
        "-": ["-"],
        "not a regular file": [str(fifo)],
        "gzip-compressed": [str(packed)],
        "--filter cannot be used": [WEB_PCAP, "--filter", "tcp"],
    }
    for words, tail in cases.items():
        out, err = io.StringIO(), io.StringIO()
        start = time.monotonic()
        summary = str(tmp_path / "s.json")
        argv = ["classify", "--policy", WEB_DB, "--workers", "2", "--json", summary, *tail]
        code = main(argv, out, err)
        assert (code, out.getvalue()) == (2, ""), err.getvalue()
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
        assert time.monotonic() - start < 3, "a cluster was started"
        assert not (tmp_path / "s.json").exists()


# --- faults ------------------------------------------------------------------------------------


def start_command(policy: str, capture: str, directory: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [str(BIN / "sgclassify"), "classify", "--policy", policy, capture, "-q",
            "--packets", str(directory / "packets.csv"), "--json", str(directory / "summary.json"),
            *extra]  # fmt: skip
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_for_rows(directory: Path, command: subprocess.Popen[str], rows: int = 5_000) -> None:
    """Until the command has written some rows of its CSV (under its temporary name until
    the run completes: `classifier.report.outputs.open_output`): the run is under way."""
    deadline = time.monotonic() + 120
    while sum(_size(p) for p in directory.glob(".packets.csv.*.partial")) < rows * 30:
        assert command.poll() is None, command.communicate()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)


def assert_no_outputs(directory: Path) -> None:
    """Neither output, nor a temporary file of one (never a partial result: scale.md
    section 5)."""
    left = sorted(p.name for p in directory.iterdir() if p.name.startswith((".packets", ".sum")))
    assert left == [], left
    assert not (directory / "summary.json").exists()
    assert not (directory / "packets.csv").exists()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed into place meanwhile
        return 0


def one_process(policy: str, capture: str, directory: Path) -> tuple[str, str, bytes, bytes]:
    done = subprocess.run(
        [str(BIN / "sgclassify"), "classify", "--policy", policy, capture, "-q",
         "--packets", str(directory / "one.csv"), "--json", str(directory / "one.json")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return (
        done.stdout,
        done.stderr,
        (directory / "one.csv").read_bytes(),
        (directory / "one.json").read_bytes(),
    )


def test_a_worker_killed_mid_run_costs_only_time(
    cluster: RealCluster, big: tuple[str, str], tmp_path: Path
) -> None:
    from distributed import Client

    policy, capture = big
    out, err, csv, summary = one_process(policy, capture, tmp_path)
    command = start_command(
        policy, capture, tmp_path, "--scheduler", cluster.address, "--blocksize", "256K"
    )
    with Client(cluster.address, set_as_default=False) as client:
        pids = client.run(os.getpid)
        wait_for_rows(tmp_path, command)
        victim = sorted(pids)[0]
        os.kill(pids[victim], signal.SIGKILL)  # its nanny starts another
        stdout, stderr = command.communicate(timeout=300)
        client.wait_for_workers(2, timeout=60)
    assert command.returncode == 0, stderr
    assert stdout == out
    notes = [line for line in stderr.splitlines(keepends=True) if line not in err.splitlines(True)]
    assert notes == [
        f"warning: worker {victim} was lost; its tasks run again on the other workers\n"
    ]
    assert (tmp_path / "packets.csv").read_bytes() == csv
    assert (tmp_path / "summary.json").read_bytes() == summary


def spawned_workers(pid: int) -> list[int]:
    found = []
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(child)
    return found


def test_a_local_worker_killed_mid_run_costs_only_time(
    big: tuple[str, str], tmp_path: Path
) -> None:
    dask_or_skip()
    policy, capture = big
    out, err, csv, summary = one_process(policy, capture, tmp_path)
    command = start_command(policy, capture, tmp_path, "--workers", "2", "--blocksize", "256K")
    wait_for_rows(tmp_path, command)
    workers = spawned_workers(command.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = command.communicate(timeout=300)
    assert command.returncode == 0, stderr
    assert stdout == out
    notes = [line for line in stderr.splitlines(keepends=True) if line not in err.splitlines(True)]
    assert len(notes) == 1 and notes[0].startswith("warning: worker tcp://127.0.0.1:"), notes
    assert (tmp_path / "packets.csv").read_bytes() == csv
    assert (tmp_path / "summary.json").read_bytes() == summary


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_nothing(big: tuple[str, str], tmp_path: Path, how: str) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) or SIGTERM (to the command): exit 130,
    `interrupted`, no --json, the --packets file removed, every process it started gone."""
    dask_or_skip()
    policy, capture = big
    command = start_command(policy, capture, tmp_path, "--workers", "2", "--blocksize", "256K")
    wait_for_rows(tmp_path, command)
    started = descendants(command.pid)
    assert len(spawned_workers(command.pid)) == 2
    if how == "ctrl-c":
        os.killpg(command.pid, signal.SIGINT)
    else:
        os.kill(command.pid, signal.SIGTERM)
    stdout, stderr = command.communicate(timeout=120)
    assert (command.returncode, stderr) == (130, "interrupted\n"), stderr
    assert_no_outputs(tmp_path)
    assert [pid for pid in started if alive(pid)] == []


def test_an_interrupt_leaves_the_cluster_up_with_nothing_of_ours(
    cluster: RealCluster, big: tuple[str, str], tmp_path: Path
) -> None:
    from distributed import Client

    policy, capture = big
    command = start_command(
        policy, capture, tmp_path, "--scheduler", cluster.address, "--blocksize", "256K"
    )
    wait_for_rows(tmp_path, command)
    os.killpg(command.pid, signal.SIGINT)
    _, stderr = command.communicate(timeout=120)
    assert (command.returncode, stderr) == (130, "interrupted\n")
    assert_no_outputs(tmp_path)
    assert cluster.scheduler is not None and cluster.scheduler.poll() is None
    assert all(worker.poll() is None for worker in cluster.workers)

    def ours(dask_scheduler: object) -> int:  # pickled by value: the scheduler runs it
        tasks = getattr(dask_scheduler, "tasks", {})
        return sum(1 for key in tasks if str(key).startswith("sg-"))

    with Client(cluster.address, set_as_default=False) as client:
        deadline = time.monotonic() + 30
        while client.run_on_scheduler(ours):
            assert time.monotonic() < deadline, "tasks of the interrupted run are still there"
            time.sleep(0.2)
        assert len(client.scheduler_info()["workers"]) == 2


# --- the workers' version, and no Dask ---------------------------------------------------------


def fake_package(directory: Path, init: str) -> Path:
    """A `classifier` package that is not this one (another version, or a broken install)."""
    package = directory / "classifier"
    (package / "scale").mkdir(parents=True)
    (package / "__init__.py").write_text(init)
    (package / "scale" / "__init__.py").write_text("")
    (package / "scale" / "tasks.py").write_text(
        "def version():\n    from classifier import __version__\n    return __version__\n"
    )
    return directory


def test_a_worker_of_another_version_stops_the_run(tmp_path: Path) -> None:
    from classifier import __version__

    fake = fake_package(tmp_path / "fake", '__version__ = "0.0.0-other"\n')
    with real_cluster(tmp_path / "cluster", workers=0) as running:
        running.add_worker()
        running.add_worker(env={"PYTHONPATH": str(fake)})
        running.wait_for_workers(2)
        done = subprocess.run(
            [str(BIN / "sgclassify"), "classify", "--policy", WEB_DB, WEB_PCAP,
             "--json", str(tmp_path / "s.json"), "--scheduler", running.address],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: worker tcp://127.0.0.1:"), lines
    assert f"runs sg-classifier 0.0.0-other, this command {__version__}" in lines[0]
    assert not (tmp_path / "s.json").exists() and done.stdout == ""


def test_without_dask_the_options_name_the_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "no-dask"
    (blocker / "distributed").mkdir(parents=True)
    (blocker / "distributed" / "__init__.py").write_text("raise ImportError('not here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    for option in (["--workers", "2"], ["--scheduler", "127.0.0.1:8786"]):
        done = subprocess.run(
            [str(BIN / "sgclassify"), "classify", "--policy", WEB_DB, WEB_PCAP, *option],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "pip install 'sg-classifier[dask]'" in done.stderr
        assert done.stderr.startswith(f"error: {option[0]} needs Dask")


def test_one_process_does_not_import_dask() -> None:
    code = (
        "import sys, io\n"
        "from classifier.cli import main\n"
        f"assert main(['classify', '--policy', {WEB_DB!r}, {str(SAMPLE_PCAPS / 'web.pcap')!r}, "
        "'-q'], io.StringIO(), io.StringIO()) == 0\n"
        "assert not {'dask', 'distributed'} & set(sys.modules), 'dask was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_local_worker_freezes_what_it_loaded() -> None:
    """The local cluster's preload (`classifier.scale.worker`) ignores Ctrl-C and, once the
    task modules are loaded, freezes them out of the garbage collector: a local worker lives
    for one run."""
    code = (
        "import gc, signal\n"
        "from classifier.scale import worker\n"
        "assert gc.get_freeze_count() == 0\n"
        "worker.dask_setup(None)\n"
        "import sys\n"
        "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, gc.get_freeze_count() > 0,\n"
        "      'classifier.scale.tasks' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True True True\n", "")
