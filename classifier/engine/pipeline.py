"""Captures in, verdicts out: reader -> fragment joining -> engine -> connection state -> stats.

Each batch goes through the fused pass (`classifier.engine._fused`: engine, state and the
summary's counters in one set of C loops) when the engine offers it (`Engine.fused_policy`),
else through the pieces one after the other (`Classification(..., fused=False)`); both give
the same columns, state and summary.

The streaming form (`Classification.run`) yields one `BatchResult` per decoded batch, so a
capture larger than memory is classified in flat memory; `classify_pcap` collects the
per-packet columns for scripts. Several captures are one continuous capture for connection
state: one tracker lives across files, in the order given.

With `workers=N` (a local Dask cluster) or `client=` (a `distributed.Client` or a scheduler's
address) the same run goes to a cluster, with exactly the same results (scale.md): the room
above the engine, `classifier.scale`, does it. The engine does not import that room; it finds
it by name at the call (`_scale_out`), as a plug-in, so the engine stays free of Dask.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.codes import REASON_ESTABLISHED
from classifier.engine.columns import (
    PACKET_COLUMNS,
    BatchEngine,
    BatchResult,
    Labels,
    decoded,
    verdict_columns,
)
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.flows import decoded_flows, flow_table, in_order
from classifier.engine.kernels import fused_kernels
from classifier.engine.stats import SummaryBuilder
from classifier.errors import ClassifierError, UsageError
from classifier.limits import DEFAULT_MAX_CONNECTIONS
from classifier.packets import PacketBatch, address_labels, own_fields
from classifier.pcap import DEFAULT_BATCH_SIZE, CaptureFilter, open_capture

DEFAULT_BLOCKSIZE = 64 * 2**20  # bytes of capture per task on a cluster


def _scale_out() -> Any:
    """The scale-out room (`classifier.scale.runner`), looked up by name: a plug-in above."""
    return importlib.import_module("classifier.scale.runner")


class Classification:
    """One classification run over one or more captures, with its statistics.

    `workers=N` runs it on a local Dask cluster of N processes, started by `run()` and stopped
    when its iteration ends, is closed or raises; `client` on an existing cluster (a
    `distributed.Client` or a scheduler address; the caller owns it). `blocksize`: the most
    capture bytes one task reads. The results are those of one process (scale.md); cluster
    failures raise `classifier.errors.ClusterError`. `notes` collects what the run says
    about the cluster (a lost worker), and `on_note`, when set, is called with each.
    """

    def __init__(
        self,
        engine: BatchEngine,
        stateful: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        summarize: bool = True,
        fused: bool = True,
        capture_filter: CaptureFilter | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        flows: bool = False,
        *,
        workers: int | None = None,
        client: Any = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
    ):
        """`summarize=False` tells the run that only the per-packet columns are wanted: the
        unfused path then skips the statistics of each batch (the fused pass counts them in
        the same loop at no extra cost), and the summary must not be read. `fused=False` runs
        the pieces one after the other (engine.classify, tracker.apply, stats.add).
        `max_connections` bounds the connections tracked at once (robustness contract,
        section 4; ignored when stateless). `flows=True` keeps the connection records for
        `flows()` (refused otherwise): they cost 64 bytes per flow slot and 128 bytes per
        connection until the end of the run, so a stream of captures larger than memory
        leaves them off by default."""
        self.engine = engine
        self.capture_filter = capture_filter  # --filter: what it drops is not part of the run
        self.stateful = stateful
        self.batch_size = batch_size
        self.summarize = summarize
        self.record_flows = flows and stateful
        scaled = workers is not None or client is not None
        # on a cluster the lanes' trackers hold the state (classifier.scale): none here
        self.tracker = (
            ConnectionTracker(max_connections=max_connections, record_flows=self.record_flows)
            if stateful and not scaled
            else None
        )
        self.paths: list[str] = []  # the captures of run(), in order (the records' files)
        self._records: list[np.ndarray] = []  # taken from the tracker after each batch
        self._flow_table: dict[str, Any] | None = None
        self.stats = SummaryBuilder(engine.rules, engine.instance_ids, stateful)
        self.stats.connection_limit = max_connections if stateful else 0
        # the fused pass (classifier.engine._fused) when the engine offers it; else the
        # pieces one after the other: engine.classify, tracker.apply, stats.add
        self.fused = fused and hasattr(engine, "fused_policy")
        self.notes: list[str] = []
        self.on_note: Callable[[str], None] | None = None
        self._scaled = None
        if scaled:
            if capture_filter is not None:
                raise UsageError(
                    "--filter cannot be used on a Dask cluster yet (its workers read whole "
                    "blocks): run it in one process, without --workers/--scheduler"
                )
            if self.record_flows:
                raise UsageError(
                    "connection records are kept by one process only: flows=True cannot be "
                    "used on a Dask cluster (workers/client)"
                )
            self._scaled = _scale_out().ScaledRun(
                engine, stateful, self.stats, self._note, workers=workers, client=client,
                blocksize=blocksize, batch_size=batch_size, max_connections=max_connections,
            )  # fmt: skip

    def _note(self, message: str) -> None:
        self.notes.append(message)
        if self.on_note is not None:
            self.on_note(message)

    def classify_batch(
        self, batch: PacketBatch, file: str = "", file_number: int = 0
    ) -> BatchResult:
        if self._scaled is not None:
            raise UsageError(
                "a run on a Dask cluster classifies whole captures: use run(), not classify_batch()"
            )
        if self.tracker is not None:
            self.tracker.join_fragments(batch)
            if self.record_flows:
                self.tracker.file_number = file_number
        try:
            return self._classify_batch(batch, file, file_number)
        finally:
            if self.record_flows and self.tracker is not None:
                records = self.tracker.take_records()
                if len(records):
                    self._records.append(records)

    def _classify_batch(self, batch: PacketBatch, file: str, file_number: int) -> BatchResult:
        if self.fused:
            return self._classify_fused(batch, file, file_number)
        stateless = self.engine.classify(batch)
        n = len(batch)
        created = np.zeros(n, np.int8)
        midstream = np.zeros(n, np.int8)
        if self.tracker is not None:
            self.tracker.apply(
                batch,
                stateless.verdict,
                stateless.reason,
                stateless.rule,
                stateless.instance,
                stateless.direction,
                stateless.new_instance,
                stateless.new_direction,
                created,
                midstream,
            )
            # packets allowed by state were not decided by any rule on either side
            by_state = stateless.reason >= REASON_ESTABLISHED
            stateless.egress_rule[by_state] = -1
            stateless.ingress_rule[by_state] = -1
        result = BatchResult(
            file,
            file_number,
            batch,
            stateless.verdict,
            stateless.reason,
            stateless.rule,
            stateless.instance,
            stateless.direction,
            created,
            midstream,
            stateless.egress_rule,
            stateless.ingress_rule,
        )
        if not self.summarize:
            return result
        self.stats.add(
            batch,
            result.verdict,
            result.reason,
            result.rule,
            result.instance,
            result.direction,
            created if self.stateful else None,
            midstream if self.stateful else None,
            side_rules=(result.egress_rule, result.ingress_rule),
        )
        return result

    def _classify_fused(self, batch: PacketBatch, file: str, file_number: int) -> BatchResult:
        """The same columns, state and statistics as the pieces, in one fused pass."""
        tracker = self.tracker.core if self.tracker is not None else None
        return classify_fused(self.engine, tracker, self.stats, batch, file, file_number)

    def run(
        self,
        paths: Iterable[str],
        progress: Callable[[str, int, int], None] | None = None,
        *,
        results: bool = True,
    ) -> Iterator[BatchResult]:
        """Classify the captures in order; `progress(path, bytes_done, bytes_total)` per batch.
        `results=False`: only `summary()` is wanted, and a run on a cluster yields nothing
        (the per-packet columns stay on the workers).

        Every capture is listed in the summary's `files` with its status (`FILE_STATUSES`):
        one that cannot be opened raises its PcapError after it is listed `unreadable` and the
        ones after it `not read`; a run stopped while reading one lists it `interrupted`."""
        if self._scaled is not None:
            yield from self._scaled.run(paths, progress, results)
            return
        path_list = [os.fsdecode(path) for path in paths]  # keeps the reader's STDIN
        self.paths = path_list
        for number, path in enumerate(path_list):
            packets = 0
            try:
                capture = open_capture(path, self.capture_filter)
            except ClassifierError as error:
                self.stats.add_file(path, 0, [str(error)], False, status="unreadable")
                for later in path_list[number + 1 :]:
                    self.stats.add_file(later, 0, [], False, status="not read")
                raise
            status = "interrupted"
            with capture:
                try:
                    for batch in capture.batches(self.batch_size):
                        packets += len(batch)
                        yield self.classify_batch(batch, path, number)
                        if progress is not None:
                            progress(path, capture.position, capture.size)
                    status = "damaged" if capture.damaged else "ok"
                finally:
                    warnings = list(capture.warnings)
                    if status == "ok" and packets == 0:
                        warnings.append(f"{path}: the capture holds no records")
                    self.stats.add_file(
                        path,
                        packets,
                        warnings,
                        bool(capture.damaged),
                        int(capture.slow_path),
                        status=status,
                        first_ns=capture.first_ts_ns,
                        last_ns=capture.last_ts_ns,
                        filtered=None if self.capture_filter is None else int(capture.filtered),
                    )

    def flow_table(self) -> dict[str, Any]:
        """The connection records of the run (flows contract, section 3), as `flows.
        flow_table` encodes them for the table writer; call it once `run()` is exhausted."""
        if self.tracker is None:
            raise UsageError("connection records need connection tracking (not --stateless)")
        if not self.record_flows:
            raise UsageError(
                "this run keeps no connection records: give Classification(..., flows=True)"
            )
        if self._flow_table is None:
            self._records.append(self.tracker.finish_records())
            records = in_order(self._records)
            self._records = []
            self._flow_table = flow_table(
                records, self.paths, Labels.of_engine(self.engine), self.tracker.clock_ns
            )
        return self._flow_table

    def flows(self) -> dict[str, np.ndarray]:
        """One record per connection, in the order of the creating packets (`FLOW_COLUMNS`:
        integers int64 with -1 where empty, booleans bool, text object arrays of str)."""
        return decoded_flows(self.flow_table())

    def summary(self, top: int = 10) -> dict[str, Any]:
        if self._scaled is not None:
            self.stats.evicted = self._scaled.evicted
        elif self.tracker is not None:
            self.stats.evicted = self.tracker.evicted
        summary = self.stats.summary(top)
        if self.capture_filter is not None:
            summary["filter"] = {
                "expression": self.capture_filter.expression,
                "filtered": sum(int(f.get("filtered", 0)) for f in summary["files"]),
            }
        return summary


@dataclass
class ClassifyResult:
    """Per-packet columns of a whole run (all files concatenated) and its summary.

    `columns` holds compact numpy columns, one element per packet: `file` (position in
    `files`), `index`, `ts_ns`, `wire_len`, the record's own `ip_version`, `protocol`,
    `sport`, `dport`, `icmp_type`, `icmp_code` (int64, -1 where empty: semantics section 6),
    `src`/`dst` (16-byte rows, IPv4 mapped), `verdict`/`reason`/`direction` (the codes of
    classifier.codes), `instance` (position in `instance_ids`, -1 for none) and `rule`
    (position in `rule_ids` and `rule_groups`, -1 for none). `named()` turns them into the
    table of section 6, the same as the `--packets` output.
    """

    columns: dict[str, np.ndarray]
    summary: dict[str, Any]
    files: list[str]
    instance_ids: list[str]
    rule_ids: list[str]
    rule_groups: list[str]
    flow_columns: dict[str, np.ndarray] | None = None  # None: stateless

    def flows(self) -> dict[str, np.ndarray]:
        """One record per connection (flows contract, section 3; `FLOW_COLUMNS` in order):
        integer columns int64 with -1 where empty, booleans bool, text object arrays of str.
        A stateless result has none: UsageError."""
        if self.flow_columns is None:
            raise UsageError("a stateless result has no connections: classify with stateful=True")
        return dict(self.flow_columns)

    def flows_to_pandas(self) -> Any:
        """`flows()` as a pandas DataFrame (needs pandas: the `pandas` extra)."""
        flows = self.flows()
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "flows_to_pandas() needs pandas: pip install 'sg-classifier[pandas]'"
            ) from None
        return pd.DataFrame(flows)

    def named(self) -> dict[str, np.ndarray]:
        """The per-packet table of section 6 (`PACKET_COLUMNS`, in order): integer columns
        int64 with -1 where the field is empty, text columns object arrays of str ("" where
        empty), by vectorised lookup."""
        c = self.columns
        labels = Labels.of(self.instance_ids, self.rule_ids, self.rule_groups)
        ip = c["ip_version"] >= 0
        version = np.where(ip, c["ip_version"], 0)
        table: dict[str, np.ndarray] = {
            "file": np.array(self.files, dtype=object)[c["file"]]
            if self.files
            else c["file"].astype(object),
            "src": decoded(address_labels(c["src"], version, ip)),
            "dst": decoded(address_labels(c["dst"], version, ip)),
        }
        for name in ("index", "ts_ns", "wire_len", *OWN_FIELDS):
            table[name] = c[name].astype(np.int64)
        encoded = verdict_columns(
            labels, c["verdict"], c["reason"], c["instance"], c["direction"], c["rule"]
        )
        table.update({name: decoded(column) for name, column in encoded.items()})
        return {name: table[name] for name, _ in PACKET_COLUMNS}

    def to_pandas(self) -> Any:
        """`named()` as a pandas DataFrame (needs pandas: the `pandas` extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "to_pandas() needs pandas: pip install 'sg-classifier[pandas]'"
            ) from None
        return pd.DataFrame(self.named())


OWN_FIELDS = ("ip_version", "protocol", "sport", "dport", "icmp_type", "icmp_code")
RESULT_COLUMNS = (
    "file", "index", "ts_ns", "wire_len", *OWN_FIELDS, "src", "dst", "verdict", "reason",
    "rule", "instance", "direction",
)  # fmt: skip
_RESULT_EMPTY: dict[str, tuple[Any, tuple[int, ...]]] = {
    "file": (np.int32, ()), "index": (np.int64, ()), "ts_ns": (np.int64, ()),
    "wire_len": (np.int64, ()), "src": (np.uint8, (16,)), "dst": (np.uint8, (16,)),
    "verdict": (np.uint8, ()), "reason": (np.uint8, ()), "rule": (np.int32, ()),
    "instance": (np.int32, ()), "direction": (np.uint8, ()),
    **{name: (np.int64, ()) for name in OWN_FIELDS},
}  # fmt: skip


def classify_fused(
    engine: BatchEngine,
    tracker: Any,
    stats: SummaryBuilder,
    batch: PacketBatch,
    file: str = "",
    file_number: int = 0,
    lane_of: np.ndarray | None = None,
    lane: int = 0,
) -> BatchResult:
    """One batch through the fused pass (`tracker`: a tracker's core, None stateless), its
    statistics folded into `stats`. With `lane_of`/`lane` (a state lane of the scale-out),
    only that lane's rows are classified and counted; the other rows' columns are left
    unset."""
    n = len(batch)
    result = BatchResult(
        file,
        file_number,
        batch,
        np.empty(n, np.uint8),
        np.empty(n, np.uint8),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
        np.empty(n, np.uint8),
        np.empty(n, np.int8),
        np.empty(n, np.int8),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
    )
    if n == 0:
        return result
    low, shift = stats.frame(batch)
    scratch = stats.denied.scratch(n)
    slot_key, slot_index, out_key, out_count, out_row = scratch
    distinct = fused_kernels.classify_batch(
        engine.fused_policy(),  # type: ignore[attr-defined]
        batch,
        tracker,
        result.verdict,
        result.reason,
        result.rule,
        result.instance,
        result.direction,
        result.created,
        result.midstream,
        result.egress_rule,
        result.ingress_rule,
        stats,
        low,
        shift,
        slot_key,
        slot_index,
        out_key,
        out_count,
        out_row,
        lane_of,
        lane,
    )
    if distinct:
        stats.denied.add_distinct(batch, scratch, distinct)
    return result


def classify_pcap(
    engine: BatchEngine,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    stateful: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    *,
    workers: int | None = None,
    client: Any = None,
    blocksize: int = DEFAULT_BLOCKSIZE,
) -> ClassifyResult:
    if isinstance(paths, str | os.PathLike):
        path_list = [os.fsdecode(paths)]
    else:
        path_list = [os.fsdecode(p) for p in paths]
    run = Classification(
        engine,
        stateful=stateful,
        batch_size=batch_size,
        max_connections=max_connections,
        # the result holds every packet's columns already: its records too (one process)
        flows=workers is None and client is None,
        workers=workers,
        client=client,
        blocksize=blocksize,
    )
    parts: dict[str, list[np.ndarray]] = {name: [] for name in RESULT_COLUMNS}
    for result in run.run(path_list):
        batch = result.batch
        parts["file"].append(np.full(len(batch), result.file_number, np.int32))
        for name in ("index", "ts_ns", "src", "dst"):
            parts[name].append(getattr(batch, name).copy())
        parts["wire_len"].append(batch.wire_len.astype(np.int64))
        for name, column in own_fields(batch).items():
            parts[name].append(column)
        parts["verdict"].append(result.verdict)
        parts["reason"].append(result.reason)
        parts["rule"].append(result.rule)
        parts["instance"].append(result.instance)
        parts["direction"].append(result.direction)
    columns = {
        name: np.concatenate(chunks)
        if chunks
        else np.zeros((0, *_RESULT_EMPTY[name][1]), _RESULT_EMPTY[name][0])
        for name, chunks in parts.items()
    }
    return ClassifyResult(
        columns,
        run.summary(),
        path_list,
        engine.instance_ids,
        [rule.id for rule in engine.rules],
        [rule.group_id for rule in engine.rules],
        run.flows() if stateful else None,
    )
