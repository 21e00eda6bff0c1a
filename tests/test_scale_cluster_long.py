"""The longer cluster run (`make cluster-test`; skipped otherwise): the failures whose
contract takes 10 s, and more and bigger scenarios.

- the scheduler killed mid-run: one line naming its address, exit 1, no partial output;
- every worker gone (no nanny to start another): one line, exit 1;
- a task lost with its worker three times (a worker whose memory limit is below what a block
  needs is killed by its nanny each time): one line naming the worker, exit 1;
- a capture that only the workers cannot read (their filesystem hides it): exit 2, one line
  naming the path and the worker;
- a worker without a working sg-classifier: one line naming it, exit 1;
- exactness on more hypothesis scenarios, on `--workers 2` and on a real cluster, and on a
  capture of a million packets cut into many blocks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.cluster import (
    BIN,
    Scenario,
    assert_same_cli,
    big_capture,
    cli_run,
    real_cluster,
    scenarios,
)
from tests.conftest import EXAMPLES
from tests.test_scale_cluster import (
    assert_no_outputs,
    fake_package,
    one_process,
    start_command,
    wait_for_rows,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SGCLASSIFY_CLUSTER_LONG") != "1",
        reason="the longer cluster run: make cluster-test (SGCLASSIFY_CLUSTER_LONG=1)",
    ),
]
MORE = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A million packets (about 80 MB) among 100 instances, and the 500-rule policy."""
    sys.path.insert(0, str(EXAMPLES.parent))
    return big_capture(tmp_path_factory.mktemp("big"), 1_000_000, seed=61, flows=20000)


def fails(command: subprocess.Popen[str], directory: Path, code: int, *words: str) -> str:
    _, stderr = command.communicate(timeout=180)
    assert command.returncode == code, stderr
    # notes of the workers lost on the way may come first: then one line, the error
    lines = [line for line in stderr.splitlines() if not line.startswith("warning: worker ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert_no_outputs(directory)
    return lines[0]


def test_a_lost_scheduler(big: tuple[str, str], tmp_path: Path) -> None:
    with real_cluster(tmp_path / "cluster") as cluster:
        command = start_command(*big, tmp_path, "--scheduler", cluster.address, "--blocksize", "1M")
        wait_for_rows(tmp_path, command)
        assert cluster.scheduler is not None
        os.killpg(cluster.scheduler.pid, signal.SIGKILL)
        started = time.monotonic()
        fails(command, tmp_path, 1, "lost the Dask scheduler", cluster.address)
        assert time.monotonic() - started < 60


def test_no_worker_left(big: tuple[str, str], tmp_path: Path) -> None:
    with real_cluster(tmp_path / "cluster", workers=0) as cluster:
        for _ in range(2):
            cluster.add_worker(nanny=False)
        cluster.wait_for_workers(2)
        command = start_command(*big, tmp_path, "--scheduler", cluster.address, "--blocksize", "1M")
        wait_for_rows(tmp_path, command)
        for worker in cluster.workers:
            os.killpg(worker.pid, signal.SIGKILL)
        fails(command, tmp_path, 1, "no worker left", cluster.address)


def test_a_task_lost_three_times(big: tuple[str, str], tmp_path: Path) -> None:
    """A worker whose memory limit is far below a 64 MiB block's columns: its nanny kills it
    at each try (an out-of-memory worker), and the third loss of the task ends the run."""
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "2"}
    with real_cluster(tmp_path / "cluster", workers=0, **env) as cluster:
        cluster.add_worker(memory="120MB")
        cluster.wait_for_workers(1)
        command = start_command(*big, tmp_path, "--scheduler", cluster.address)
        fails(command, tmp_path, 1, "lost with its worker 3 times", "worker tcp://127.0.0.1:")


def test_a_capture_only_the_workers_cannot_read(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root to hide a directory from a worker")
    hidden = tmp_path / "captures"
    hidden.mkdir()
    shutil.copy(EXAMPLES.parent / "pcaps" / "web.pcap", hidden / "web.pcap")
    with real_cluster(tmp_path / "cluster", workers=0) as cluster:
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {hidden}"], check=False
        )
        if probe.returncode != 0:
            pytest.skip("cannot mount in a private namespace here")
        argv = [str(BIN / "dask"), "worker", cluster.address, "--nthreads", "1", "--host",
                "127.0.0.1", "--no-dashboard"]  # fmt: skip
        worker = subprocess.Popen(
            ["unshare", "-m", "sh", "-c",
             f"mount -t tmpfs tmpfs {hidden} && exec " + " ".join(argv)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        cluster.workers.append(worker)
        cluster.wait_for_workers(1)
        command = start_command(
            str(EXAMPLES / "web-db.yaml"), str(hidden / "web.pcap"), tmp_path,
            "--scheduler", cluster.address,
        )  # fmt: skip
        line = fails(command, tmp_path, 2, str(hidden / "web.pcap"), "on worker tcp://127.0.0.1:")
        assert "cannot open" in line


def test_a_worker_without_sg_classifier(tmp_path: Path) -> None:
    broken = fake_package(tmp_path / "broken", "raise ImportError('a broken install')\n")
    with real_cluster(tmp_path / "cluster", workers=0) as cluster:
        cluster.add_worker(env={"PYTHONPATH": str(broken)})
        cluster.wait_for_workers(1)
        command = start_command(
            str(EXAMPLES / "web-db.yaml"), str(EXAMPLES.parent / "pcaps" / "web.pcap"), tmp_path,
            "--scheduler", cluster.address,
        )  # fmt: skip
        fails(command, tmp_path, 1, "cannot run sg-classifier", "worker tcp://127.0.0.1:")


@MORE
@given(scenario=scenarios(max_size=40))
def test_more_scenarios_on_workers_2(scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scenario.write(Path(tmp))
        one = cli_run(scenario, Path(tmp))
        assert_same_cli(
            one,
            cli_run(scenario, Path(tmp), "--workers", "2", "--blocksize", str(scenario.blocksize)),
        )


def test_a_million_packets_in_many_blocks(big: tuple[str, str], tmp_path: Path) -> None:
    out, err, csv, summary = one_process(*big, tmp_path)
    with real_cluster(tmp_path / "cluster") as cluster:
        for extra in (["--scheduler", cluster.address], ["--workers", "2"]):
            command = start_command(*big, tmp_path, *extra, "--blocksize", "3M")
            stdout, stderr = command.communicate(timeout=600)
            assert (command.returncode, stdout, stderr) == (0, out, err)
            assert (tmp_path / "packets.csv").read_bytes() == csv
            assert (tmp_path / "summary.json").read_bytes() == summary
