"""Test helpers of the scale-out: scenarios written as captures, runs compared with one
process, and real Dask clusters (`dask scheduler` + `dask worker` processes on 127.0.0.1)
started and stopped by pid.

A scenario is a hypothesis-drawn policy and packet sequence (tests/strategies.py) cut into
one to three captures, sometimes with a damaged end or a snap length below some records, so
that connections, datagrams, ICMP errors, warnings and damage span file and block
boundaries.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from classifier.cli import main
from classifier.engine import Engine
from classifier.engine.pipeline import Classification
from classifier.errors import ClassifierError
from classifier.packets import COLUMNS, Packet
from classifier.policy import Policy, load_policy
from tests.strategies import policy_and_sequences
from tests.test_classify_captures import write_capture, write_policy

RESULT_COLUMNS = ("verdict", "reason", "rule", "instance", "direction", "created", "midstream",
                  "egress_rule", "ingress_rule")  # fmt: skip
BIN = Path(sys.executable).parent


def dask_or_skip() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        pytest.skip("Dask's distributed scheduler is not installed (the extra 'dask')")


@dataclass
class Scenario:
    policy: Policy
    packets: list[Packet]
    cuts: list[int]  # where the sequence is cut into files
    blocksize: int
    damage: int = 0  # bytes cut off the last file
    snaplen: int = 0  # a snap length (below some records) in the first file's header
    stateless: bool = False
    top: int = 10
    paths: list[str] = field(default_factory=list)
    policy_path: str = ""

    def write(self, directory: Path) -> None:
        self.policy_path = str(directory / "policy.yaml")
        write_policy(Path(self.policy_path), self.policy)
        bounds = [0, *self.cuts, len(self.packets)]
        self.paths = []
        for number, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
            path = directory / f"part-{number}.pcap"
            write_capture(path, self.packets[lo:hi])
            self.paths.append(str(path))
        if self.snaplen:
            with open(self.paths[0], "r+b") as stream:
                stream.seek(16)
                stream.write(self.snaplen.to_bytes(4, "little"))
        if self.damage:
            last = Path(self.paths[-1])
            size = last.stat().st_size
            os.truncate(last, max(24, size - self.damage))


@st.composite
def scenarios(draw: st.DrawFn, max_size: int = 30, blocksizes: tuple[int, ...] = ()) -> Scenario:
    policy, packets = draw(policy_and_sequences(max_size=max_size))
    files = draw(st.integers(1, 3))
    cuts = sorted(
        draw(st.lists(st.integers(0, len(packets)), min_size=files - 1, max_size=files - 1))
    )
    return Scenario(
        policy,
        packets,
        cuts,
        blocksize=draw(st.sampled_from(blocksizes or (1, 90, 150, 400, 1500, 1 << 20))),
        damage=draw(st.sampled_from((0, 0, 0, 0, 3, 17, 40))),
        snaplen=draw(st.sampled_from((0, 0, 0, 70, 100))),
        stateless=draw(st.integers(0, 4)) == 0,
        top=draw(st.sampled_from((10, 10, 0, 1, 3))),
    )


@dataclass
class Outcome:
    """Everything a run gives the API: the summary, every column, the failure if any."""

    summary: str
    columns: dict[str, np.ndarray]
    failure: str | None
    notes: list[str]


def api_run(scenario: Scenario, **scale: Any) -> Outcome:
    engine = Engine(load_policy(scenario.policy_path))
    groups = scale.pop("groups", None)
    run = Classification(engine, stateful=not scenario.stateless, **scale)
    if groups is not None:
        assert run._scaled is not None
        run._scaled.groups = groups
    parts: dict[str, list[np.ndarray]] = {name: [] for name in (*RESULT_COLUMNS, *COLUMNS)}
    parts["file"] = []
    failure = None
    try:
        for result in run.run(scenario.paths):
            for name in RESULT_COLUMNS:
                parts[name].append(getattr(result, name))
            for name in COLUMNS:
                parts[name].append(getattr(result.batch, name))
            parts["file"].append(np.full(len(result.batch), result.file_number))
    except ClassifierError as error:
        failure = f"{type(error).__name__}: {error}"
    columns = {
        name: np.concatenate(chunks) if chunks else np.zeros(0) for name, chunks in parts.items()
    }
    return Outcome(json.dumps(run.summary(scenario.top)), columns, failure, run.notes)


def assert_same(one: Outcome, scaled: Outcome) -> None:
    assert scaled.failure == one.failure
    assert scaled.summary == one.summary
    for name, column in one.columns.items():
        assert len(scaled.columns[name]) == len(column), name
        assert np.array_equal(scaled.columns[name], column), name


@dataclass
class CliOutcome:
    code: int
    out: str
    err: str
    packets: bytes | None
    json: bytes | None


def big_capture(directory: Path, packets: int, seed: int, flows: int) -> tuple[str, str]:
    """A synthetic capture among the end-to-end benchmark's 100 instances (benchmarks/synth.py)
    and its 500-rule policy, written in `directory`: (policy path, capture path)."""
    from benchmarks import end_to_end, synth

    policy, capture = directory / "policy.json", directory / "big.pcap"
    policy.write_text(json.dumps(end_to_end.build_policy_data()))
    clients, servers = end_to_end.clients_and_servers()
    synth.write_capture(str(capture), packets, clients, servers, seed=seed, flows=flows)
    return str(policy), str(capture)


def cli_run(scenario: Scenario, directory: Path, *extra: str) -> CliOutcome:
    packets, summary = directory / "packets.csv", directory / "summary.json"
    for path in (packets, summary):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    argv = ["classify", "--policy", scenario.policy_path, *scenario.paths, "-q"]
    argv += ["--packets", str(packets), "--json", str(summary), "--top", str(scenario.top)]
    argv += ["--stateless"] if scenario.stateless else []
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, *extra], out, err)
    return CliOutcome(code, out.getvalue(), err.getvalue(), _bytes(packets), _bytes(summary))


def _bytes(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def without_cluster_notes(err: str) -> str:
    return "".join(
        line for line in err.splitlines(keepends=True) if not line.startswith("warning: worker ")
    )


def assert_same_cli(one: CliOutcome, scaled: CliOutcome) -> None:
    assert (scaled.code, scaled.out) == (one.code, one.out)
    assert without_cluster_notes(scaled.err) == one.err
    assert scaled.json == one.json
    assert scaled.packets == one.packets


# --- real clusters -------------------------------------------------------------------------


@dataclass
class RealCluster:
    """`dask scheduler` and `dask worker` processes on 127.0.0.1, by pid."""

    directory: Path
    address: str = ""
    scheduler: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    logs: list[Any] = field(default_factory=list)

    def start_scheduler(self) -> None:
        file = self.directory / "scheduler.json"
        self.scheduler = self._spawn(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(file)],
            "scheduler",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise RuntimeError("the dask scheduler did not start")
            time.sleep(0.1)
        time.sleep(0.2)
        self.address = json.loads(file.read_text())["address"]

    def add_worker(
        self, nanny: bool = True, env: dict[str, str] | None = None, memory: str = "4GB"
    ) -> subprocess.Popen[bytes]:
        argv = [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--host",
                "127.0.0.1", "--no-dashboard", "--memory-limit", memory,
                "--local-directory", str(self.directory / "scratch")]  # fmt: skip
        argv += [] if nanny else ["--no-nanny"]
        worker = self._spawn(argv, f"worker-{len(self.workers)}", env)
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=60)

    def _spawn(
        self, argv: list[str], name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - closed by stop()
        self.logs.append(log)
        environment = {**os.environ, **self.env, **(env or {})}
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, self.scheduler]:
            if process is None:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
        for log in self.logs:
            log.close()


@contextlib.contextmanager
def real_cluster(directory: Path, workers: int = 2, **env: str) -> Iterator[RealCluster]:
    dask_or_skip()
    directory.mkdir(parents=True, exist_ok=True)
    cluster = RealCluster(directory, env=dict(env))
    try:
        cluster.start_scheduler()
        for _ in range(workers):
            cluster.add_worker()
        if workers:
            cluster.wait_for_workers(workers)
        yield cluster
    finally:
        cluster.stop()


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
