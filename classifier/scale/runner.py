"""The driver of a classification on a Dask cluster (the design note is classifier.scale's).

`ScaledRun.run(paths)` connects (or starts a local cluster), checks the workers' version, then
walks the captures' blocks in a bounded window: for each block it submits the tasks of
`classifier.scale.tasks` (stateless: one that classifies it; stateful: a step of every
lane's chain and the task that combines their shares), then takes the finished blocks back
in capture order, yielding their `BatchResult`s, and at the end merges the lanes'
statistics into the run's `SummaryBuilder`. Between waits (at most `WATCH_S` each) it
watches the cluster: a worker gone is noted once (its tasks run again elsewhere, by Dask's
lineage), no worker or no scheduler for `SCHEDULER_TIMEOUT_S`, a task lost with its workers
three times, a capture a worker cannot read or a version mismatch end the run with a
`ClusterError`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import tempfile
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from classifier.engine.columns import BatchEngine, BatchResult
from classifier.engine.stats import SummaryBuilder
from classifier.errors import (
    ClassifierError,
    ClusterError,
    PcapError,
    UsageError,
    WorkerCaptureError,
)
from classifier.limits import DEFAULT_MAX_CONNECTIONS
from classifier.scale import tasks
from classifier.scale.blocks import FileDone, Unreadable, plan
from classifier.scale.options import (
    DEFAULT_BLOCKSIZE,
    SCHEDULER_TIMEOUT_S,
    check_blocksize,
    check_workers,
    parse_address,
    require_dask,
)
from classifier.scale.tasks import Block

WATCH_S = 0.25  # the longest wait between two looks at the cluster
MAX_WINDOW = 256  # blocks in flight, at the most
POLL_S = 1.0  # how often the workers are listed
ALLOWED_FAILURES = 2  # a task lost with its worker a third time fails the run (local cluster)
# The local cluster's settings. glibc keeps freed memory for the next block's columns instead of
# handing it back (Dask's default, a trim threshold of 64 KiB, makes every block's columns
# fresh pages: twice the system time of the whole run); a column below 32 MiB (a 64 MiB
# block's) comes from that heap rather than its own mapping.
# Dask's sampling profiler (every 10 ms it walks the task thread's stack, holding the GIL) is
# off: nothing reads it, and it costs the workers CPU time.
LOCAL_CONFIG = {
    "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": str(1 << 34),
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": str(1 << 25),
}
# task kinds in the order they run for one block: a block's later steps go before the next
# block's earlier ones (Dask runs higher priorities first)
RANKS = {name: rank for rank, name in enumerate(
    ("lane", "out", "finish", "summary")
)}  # fmt: skip


def _on_worker(function: Callable[..., Any], *args: Any) -> Any:
    """Run a task; a capture this worker cannot read names the worker too."""
    try:
        return function(*args)
    except PcapError as error:
        from distributed import get_worker

        raise WorkerCaptureError(f"{error} (on worker {get_worker().address})") from None


def _identity(value: Any) -> Any:
    return value


@dataclass
class _BlockRun:
    """The futures of one block in flight."""

    block: Block
    finish: Any  # the block's Finished (stateful: the lanes' shares combined)
    others: list[Any] = field(default_factory=list)  # stateful: each lane's share


class ScaledRun:
    """One classification on a cluster, for `classifier.engine.pipeline.Classification`.

    `stats` (a SummaryBuilder) receives the merged statistics and the files' facts; `note`
    is called with each note about the cluster (a lost worker)."""

    def __init__(
        self,
        engine: BatchEngine,
        stateful: bool,
        stats: SummaryBuilder,
        note: Callable[[str], None],
        *,
        workers: int | None = None,
        client: Any = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
        batch_size: int = 65536,
        groups: int | None = None,
        window: int | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ):
        if workers is not None and client is not None:
            raise UsageError("give workers (a local cluster) or client (a cluster), not both")
        if workers is not None:
            check_workers(workers)
        if isinstance(client, str):
            client = parse_address(client)
        check_blocksize(blocksize)
        self.engine, self.stateful, self.stats, self.note = engine, stateful, stats, note
        self.workers, self.client, self.blocksize = workers, client, blocksize
        self.batch_size, self.groups, self.window = batch_size, groups, window
        self.max_connections = max_connections
        self.evicted = 0  # connections the lanes' limits forgot (scale.md section 2)
        require_dask()

    def run(
        self,
        paths: Iterable[str],
        progress: Callable[[str, int, int], None] | None = None,
        results: bool = True,
    ) -> Iterator[BatchResult]:
        with _quiet_dask(), _sticky_interrupts(), self._connect() as (client, address):
            driver = _Driver(self, client, address)
            try:
                yield from driver.run(list(paths), progress, results)
            except (OSError, TimeoutError) as error:  # Dask's connections are OSErrors
                driver.cancel()
                if client.status == "running":
                    raise ClusterError(
                        f"the Dask cluster at {address} failed: {type(error).__name__}: {error}"
                    ) from None
                raise ClusterError(f"lost the Dask scheduler at {address}") from None
            except BaseException:  # failed, interrupted, or its consumer stopped early
                driver.cancel()
                raise
            finally:
                driver.futures.clear()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[tuple[Any, str]]:
        import dask

        distributed: Any = require_dask()

        if self.workers is not None:
            with contextlib.ExitStack() as stack:
                scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-dask-"))
                stack.enter_context(dask.config.set(LOCAL_CONFIG))
                tracker = _resource_tracker()
                tracker_was_running = tracker is not None and tracker._fd is not None
                with _deferred_interrupts():  # no half-started cluster left behind
                    try:
                        cluster = distributed.LocalCluster(
                            n_workers=self.workers,
                            threads_per_worker=1,
                            processes=True,
                            host="127.0.0.1",
                            scheduler_port=0,
                            dashboard_address=None,
                            silence_logs=logging.CRITICAL,
                            local_directory=scratch,
                            preload=["classifier.scale.worker"],
                        )
                    except Exception as error:  # noqa: BLE001 - any failure to start: one line
                        raise ClusterError(f"cannot start a local Dask cluster: {error}") from None
                    if tracker is not None and not tracker_was_running:
                        # the process multiprocessing started for the workers exits with them
                        stack.callback(_uninterrupted, tracker._stop)
                    stack.callback(_uninterrupted, cluster.close)
                client = distributed.Client(cluster, set_as_default=False)
                stack.callback(_uninterrupted, client.close)
                yield client, cluster.scheduler_address
            return
        if isinstance(self.client, str):
            try:
                client = distributed.Client(
                    self.client, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False
                )
            except (OSError, TimeoutError) as error:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {self.client} within "
                    f"{SCHEDULER_TIMEOUT_S:.0f} s ({type(error).__name__})"
                ) from None
            try:
                yield client, self.client
            finally:
                _uninterrupted(client.close)
            return
        scheduler = getattr(self.client, "scheduler", None)
        yield self.client, str(getattr(scheduler, "address", "the client's scheduler"))


def _resource_tracker() -> Any:
    """multiprocessing's resource tracker (a process it starts with the first spawned one)."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    return tracker if hasattr(tracker, "_stop") and hasattr(tracker, "_fd") else None


_INTERRUPTED = threading.Event()  # a Ctrl-C came during the run (`_sticky_interrupts`)


@contextlib.contextmanager
def _sticky_interrupts() -> Iterator[None]:
    """A Ctrl-C that raises KeyboardInterrupt is remembered: raised in a destructor (Dask's
    futures release themselves in `__del__`), Python prints and drops it, and the run would
    go on to the end; the driver raises it again at its next step (`_check_interrupt`).
    Whatever SIGINT handler is in place (Python's, the command's, a caller's) still runs
    first and decides: only the KeyboardInterrupt it raises is remembered."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored, or the default action: nothing is raised
        yield
        return
    handler: Callable[[int, Any], Any] = previous

    def interrupt(signum: int, frame: Any) -> None:
        try:
            handler(signum, frame)
        except KeyboardInterrupt:
            _INTERRUPTED.set()
            raise

    _INTERRUPTED.clear()
    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is interrupt:  # not replaced meanwhile (SIG_IGN)
            signal.signal(signal.SIGINT, previous)
        _INTERRUPTED.clear()


def _check_interrupt() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Ctrl-C (and SIGTERM) wait until the block is done, then interrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {
        number: signal.signal(number, lambda signum, frame: caught.append(signum))
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if caught:
        raise KeyboardInterrupt


def _uninterrupted(close: Callable[[], Any]) -> None:
    """Close a client or cluster; a second Ctrl-C waits until it is done (nothing is left
    running halfway through shutting down)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        with contextlib.suppress(Exception):
            close()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own log lines (a worker restarted, a connection lost) are not this command's
    output: the notes and errors say what matters, once."""
    names = [
        name
        for name in ("distributed", "dask", "tornado", "asyncio", *logging.root.manager.loggerDict)
        if name.split(".")[0] in ("distributed", "dask", "tornado", "asyncio")
    ]
    loggers = [logging.getLogger(name) for name in dict.fromkeys(names)]
    levels = [(logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
        logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="distributed")
            warnings.filterwarnings("ignore", message=".*[Ll]arge object.*")
            yield
    finally:
        for logger, (level, disabled) in zip(loggers, levels, strict=True):
            logger.setLevel(level)
            logger.disabled = disabled


def _ignore_abandoned_gathers(client: Any) -> None:
    """A bounded gather given up (`_Driver.gather`) leaves Dask's waiting task behind; when the
    client closes it ends with `AllExit`, which asyncio would print as "Task exception was never
    retrieved" when the task is collected, maybe at the process's exit, after `_quiet_dask`.
    The client's event loop drops that one report; every other goes on as before."""
    from distributed.client import AllExit

    loop = getattr(getattr(client, "loop", None), "asyncio_loop", None)
    if loop is None or getattr(loop, "_sg_quiet_gathers", False):
        return
    previous = loop.get_exception_handler()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), AllExit):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop._sg_quiet_gathers = True


class _Driver:
    def __init__(self, run: ScaledRun, client: Any, address: str):
        self.distributed: Any = require_dask()
        self.run_ = run
        self.client, self.address = client, address
        self.token = uuid.uuid4().hex[:10]
        self.futures: set[Any] = set()  # everything submitted and not released
        self.done = threading.Event()  # set when a future waited on is done
        self.waited: set[str] = set()  # keys whose futures call it
        self.lost_since: float | None = None
        self.empty_since: float | None = None
        self.last_poll = 0.0
        _ignore_abandoned_gathers(client)
        workers = self._wait_for_workers()
        self._check_versions(workers)
        self.known = workers
        self.groups = run.groups or max(1, len(workers))
        # the connection limit, shared by the state lanes in proportion to their share of the
        # keys (scale.md section 2, the second exception); exact while nothing is evicted
        self.lane_limit = max(1, -(-run.max_connections // self.groups))
        # blocks in flight: two per worker and two more, and for small blocks as many as hold
        # that many default blocks' bytes (tiny blocks are cheap; their round trips are not)
        few = 2 * max(1, len(workers)) + 2
        self.window = run.window or min(
            max(few, few * DEFAULT_BLOCKSIZE // max(run.blocksize, 1)), MAX_WINDOW
        )
        self.lane_workers = sorted(workers)
        self.lanes: list[Any] = [None] * self.groups  # each lane's last step
        self.steps = [0] * self.groups

    # --- the cluster ---------------------------------------------------------------------

    def _running_workers(self) -> set[str] | None:
        try:
            info = self.client.sync(
                self.client.scheduler.identity, n_workers=-1, callback_timeout=5
            )
        except Exception:  # noqa: BLE001 - any failure: the scheduler did not answer
            return None
        return {
            address
            for address, worker in info.get("workers", {}).items()
            if worker.get("status", "running") == "running"
        }

    def _wait_for_workers(self) -> set[str]:
        deadline = time.monotonic() + SCHEDULER_TIMEOUT_S
        while True:
            workers = self._running_workers()
            if workers:
                return workers
            if time.monotonic() > deadline:
                what = "no answer" if workers is None else "no worker"
                raise ClusterError(
                    f"the Dask scheduler at {self.address}: {what} within "
                    f"{SCHEDULER_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.1)

    def _check_versions(self, workers: set[str]) -> None:
        from classifier import __version__

        found = self.client.run(tasks.version, workers=sorted(workers), on_error="return")
        for worker, version in sorted(found.items()):
            if isinstance(version, OSError | TimeoutError):
                continue  # it went away meanwhile: a lost worker, noted as such
            if isinstance(version, BaseException):
                raise ClusterError(
                    f"worker {worker} cannot run sg-classifier ({type(version).__name__}: "
                    f"{version}); this command runs {__version__}: install it on every worker"
                )
            if version != __version__:
                raise ClusterError(
                    f"worker {worker} runs sg-classifier {version}, this command "
                    f"{__version__}: install the same version on every worker"
                )

    def watch(self) -> None:
        """Notes and failures of the cluster, looked at between waits."""
        now = time.monotonic()
        if self.client.status != "running":
            self.lost_since = self.lost_since or now
            if now - self.lost_since > SCHEDULER_TIMEOUT_S:
                raise ClusterError(
                    f"lost the Dask scheduler at {self.address}: no answer for "
                    f"{SCHEDULER_TIMEOUT_S:.0f} s"
                )
            return
        if now - self.last_poll < POLL_S:
            return
        self.last_poll = now
        workers = self._running_workers()
        if workers is None:
            self.lost_since = self.lost_since or now
            if now - self.lost_since > SCHEDULER_TIMEOUT_S:
                raise ClusterError(
                    f"lost the Dask scheduler at {self.address}: no answer for "
                    f"{SCHEDULER_TIMEOUT_S:.0f} s"
                )
            return
        self.lost_since = None
        for worker in sorted(self.known - workers):
            self.run_.note(f"worker {worker} was lost; its tasks run again on the other workers")
        if workers - self.known:
            self._check_versions(workers - self.known)
        self.known = workers
        if workers:
            self.empty_since = None
        else:
            self.empty_since = self.empty_since or now
            if now - self.empty_since > SCHEDULER_TIMEOUT_S:
                raise ClusterError(
                    f"no worker left on the Dask cluster at {self.address} for "
                    f"{SCHEDULER_TIMEOUT_S:.0f} s"
                )

    def result(self, future: Any) -> Any:
        """A finished task's value, or the run's failure."""
        if future.status == "error":
            error = future.exception()
            if isinstance(error, ClassifierError):
                raise error
            if type(error).__name__ == "KilledWorker":
                worker = getattr(getattr(error, "last_worker", None), "address", "?")
                raise ClusterError(
                    f"a task was lost with its worker {ALLOWED_FAILURES + 1} times or more "
                    f"(last on worker {worker}): giving up"
                )
            raise ClusterError(f"a task failed on the cluster: {type(error).__name__}: {error}")
        if future.status == "cancelled":  # the client lost the scheduler, and it the tasks
            if self.client.status != "running":
                raise ClusterError(f"lost the Dask scheduler at {self.address}")
            raise ClusterError(f"the Dask scheduler at {self.address} dropped a task")
        return future.result()

    def gather(self, futures: list[Any]) -> list[Any]:
        """The values of the leading futures that are done, in one round trip."""
        ready = []
        for future in futures:
            if future is None or not future.done():
                break
            if future.status != "finished":
                self.result(future)  # raises the run's failure
            ready.append(future)
        if not ready:
            return []
        try:  # bounded: data on a worker that died meanwhile would be waited for forever
            values: list[Any] = self.client.sync(
                self.client._gather, ready, callback_timeout=SCHEDULER_TIMEOUT_S / 2
            )
        except TimeoutError:
            return []  # not there now: look at the cluster, and try again
        except Exception:  # noqa: BLE001 - lost meanwhile: say which way, one by one
            for future in ready:
                if future.status != "finished":
                    self.result(future)
            return []
        return values

    def wait(self, futures: list[Any]) -> None:
        """Until one of `futures` is done, or `WATCH_S`; then look at the cluster."""
        self.done.clear()
        for future in futures:
            if future.key not in self.waited:
                self.waited.add(future.key)
                future.add_done_callback(lambda _: self.done.set())
        if not any(future.done() for future in futures):
            self.done.wait(WATCH_S)
        self.watch()

    def cancel(self) -> None:
        """An interrupted or failed run: release every task of the run, which the scheduler
        then forgets (the running ones are stopped with their results dropped). Not
        `Client.cancel`: it trips over dependents that no client wants any more."""
        self.futures = set()
        self.lanes = [None] * self.groups

    # --- tasks ---------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        function: Callable[..., Any],
        *args: Any,
        block: int,
        group: int = -1,
        pin: bool = False,
    ) -> Any:
        """Submit one task; `pin`: a step of a group's chain, which prefers the worker of its
        group (so chains spread over the workers and stay put; any other if it is gone)."""
        options: dict[str, Any] = {}
        if pin and self.lane_workers:
            options = {
                "workers": [self.lane_workers[group % len(self.lane_workers)]],
                "allow_other_workers": True,
            }
        future = self.client.submit(
            functools.partial(_on_worker, function),
            *args,
            key=f"sg-{kind}-{self.token}-{block}-{group}",
            priority=-len(RANKS) * block + RANKS[kind],
            **options,
        )
        self.futures.add(future)
        return future

    def release(self, futures: Iterable[Any]) -> None:
        for future in futures:
            if future is not None:
                self.futures.discard(future)

    def start(self, block: Block, engine: Any, results: bool) -> _BlockRun:
        """Submit a block's tasks: stateless, one that classifies it; stateful, a step of
        every lane's chain on it and the task that combines their shares."""
        run = self.run_
        n = block.number
        if not run.stateful:
            finish = self.submit(
                "finish", tasks.classify_block, engine, block, run.batch_size, results, block=n
            )
            return _BlockRun(block, finish)
        br = _BlockRun(block, None)
        outs = []
        for lane in range(self.groups):
            step = self.submit(
                "lane", tasks.lane_step, engine, block, self.lanes[lane], lane, self.groups,
                self.steps[lane], self.lane_limit, run.batch_size, results, block=n,
                group=lane, pin=True,
            )  # fmt: skip
            self.release([self.lanes[lane]])
            self.lanes[lane] = step
            self.steps[lane] += 1
            if results or lane == 0:  # else the other lanes' shares hold nothing to combine
                outs.append(self.submit("out", tasks.output, step, block=n, group=lane))
        br.others = outs
        br.finish = self.submit("finish", tasks.combine, block, outs, results, block=n)
        return br

    # --- the run -------------------------------------------------------------------------

    def run(
        self,
        paths: list[str],
        progress: Callable[[str, int, int], None] | None,
        results: bool,
    ) -> Iterator[BatchResult]:
        run = self.run_
        engine = self.client.submit(
            _identity, run.engine, key=f"sg-engine-{self.token}", priority=1 << 30
        )
        self.futures.add(engine)
        blocks = plan(paths, run.blocksize, run.batch_size)
        queue: deque[_BlockRun | FileDone] = deque()  # in capture order
        slow_path: dict[int, int] = {}
        times: dict[int, tuple[int, int | None]] = {}  # per capture: first, last timestamps
        in_flight, exhausted = 0, False
        failure: ClassifierError | None = None
        while True:
            _check_interrupt()
            while not exhausted and in_flight < self.window:
                try:
                    item = next(blocks)
                except StopIteration:
                    exhausted = True
                    break
                except ClassifierError as error:  # a capture the command cannot read
                    exhausted, failure = True, error
                    break
                if isinstance(item, Unreadable):  # listed (FileDone) before, as in one process
                    exhausted, failure = True, item.error
                    break
                if isinstance(item, FileDone):
                    queue.append(item)
                    continue
                queue.append(self.start(item, engine, results))
                in_flight += 1
            progressed = False
            done = self.gather([
                item.finish for item in queue
                if not isinstance(item, FileDone)
            ])  # fmt: skip
            while queue:
                head = queue[0]
                if isinstance(head, FileDone):
                    queue.popleft()
                    _add_file(run.stats, head, slow_path, times)
                    progressed = True
                    continue
                if not done:
                    break
                finished: tasks.Finished = done.pop(0)
                queue.popleft()
                in_flight -= 1
                self.release([head.finish, *head.others])
                if finished.stats is not None:
                    run.stats.merge(finished.stats)
                number = head.block.file_number
                slow_path[number] = slow_path.get(number, 0) + finished.slow_path
                if finished.first_ns is not None:
                    first, _ = times.get(number, (finished.first_ns, None))
                    times[number] = (first, finished.last_ns)
                if progress is not None:
                    progress(head.block.path, head.block.end, head.block.file_size)
                progressed = True
                yield from finished.results
            if not queue and exhausted:
                break
            if not progressed:
                waiting = []
                if queue and not isinstance(queue[0], FileDone):
                    waiting.append(queue[0].finish)
                self.wait(waiting)
        if run.stateful:
            run.evicted = self._lane_summaries()
            if run.evicted:
                run.note(
                    f"the connection limit ({run.max_connections:,}, shared by the cluster's "
                    f"{self.groups} state lanes) forgot {run.evicted:,} connections: from the "
                    "first eviction on, verdicts, connections and per-rule counts are not "
                    "those of one process (scale.md section 2)"
                )
        self.last_poll = 0.0
        self.watch()  # a worker lost in the last moments is noted too
        _check_interrupt()
        if failure is not None:
            raise failure

    def _lane_summaries(self) -> int:
        """Every lane's statistics, from its last step, merged into the run's; returns the
        connections the lanes' limits forgot."""
        futures = [
            self.submit("summary", tasks.lane_summary, step, lane, block=-1, group=lane)
            for lane, step in enumerate(self.lanes)
            if step is not None
        ]
        values: list[tuple[SummaryBuilder, int]] = []
        while len(values) < len(futures):
            _check_interrupt()
            values.extend(self.gather(futures[len(values) :]))
            if len(values) < len(futures):
                self.wait(futures[len(values) :])
        self.release(futures)
        for stats, _ in values:
            self.run_.stats.merge(stats)
        return sum(evicted for _, evicted in values)

    def __repr__(self) -> str:
        return f"<scale driver {self.token} on {self.address}: {os.getpid()}>"


def _add_file(
    stats: SummaryBuilder,
    done: FileDone,
    slow_path: dict[int, int],
    times: dict[int, tuple[int, int | None]],
) -> None:
    """A capture's entry in `files`, as one process's read leaves it (`Classification.run`)."""
    warnings = list(done.warnings)
    status = done.status or ("damaged" if done.damaged else "ok")
    if status == "ok" and done.packets == 0:
        warnings.append(f"{done.path}: the capture holds no records")
    first, last = times.get(done.file_number, (None, None))
    stats.add_file(
        done.path, done.packets, warnings, done.damaged, slow_path.get(done.file_number, 0),
        status=status, first_ns=first, last_ns=last,
    )  # fmt: skip
