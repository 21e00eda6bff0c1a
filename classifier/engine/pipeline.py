"""Captures in, verdicts out: reader -> fragment joining -> engine -> connection state -> stats.

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

from classifier.codes import (
    DIRECTION_NAMES,
    REASON_ESTABLISHED,
    REASON_NAMES,
    VERDICT_NAMES,
    names,
)
from classifier.engine.columns import BatchEngine, BatchResult
from classifier.engine.conntrack import ConnectionTracker
from classifier.engine.stats import SummaryBuilder
from classifier.packets import PacketBatch
from classifier.pcap import DEFAULT_BATCH_SIZE, open_capture

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
        *,
        workers: int | None = None,
        client: Any = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
    ):
        self.engine = engine
        self.stateful = stateful
        self.batch_size = batch_size
        self.tracker = ConnectionTracker() if stateful else None
        self.stats = SummaryBuilder(engine.rules, engine.instance_ids, stateful)
        self.notes: list[str] = []
        self.on_note: Callable[[str], None] | None = None
        self._scaled = None
        if workers is not None or client is not None:
            self._scaled = _scale_out().ScaledRun(
                engine, stateful, self.stats, self._note, workers=workers, client=client,
                blocksize=blocksize, batch_size=batch_size,
            )  # fmt: skip

    def _note(self, message: str) -> None:
        self.notes.append(message)
        if self.on_note is not None:
            self.on_note(message)

    def classify_batch(
        self, batch: PacketBatch, file: str = "", file_number: int = 0
    ) -> BatchResult:
        if self.tracker is not None:
            self.tracker.join_fragments(batch)
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

    def run(
        self,
        paths: Iterable[str],
        progress: Callable[[str, int, int], None] | None = None,
        *,
        results: bool = True,
    ) -> Iterator[BatchResult]:
        """Classify the captures in order; `progress(path, bytes_done, bytes_total)` per batch.
        `results=False`: only `summary()` is wanted, and a run on a cluster yields nothing
        (the per-packet columns stay on the workers)."""
        if self._scaled is not None:
            yield from self._scaled.run(paths, progress, results)
            return
        for number, path in enumerate(paths):
            packets = 0
            with open_capture(path) as capture:
                try:
                    for batch in capture.batches(self.batch_size):
                        packets += len(batch)
                        yield self.classify_batch(batch, str(path), number)
                        if progress is not None:
                            progress(str(path), capture.position, capture.size)
                finally:
                    self.stats.add_file(
                        str(path),
                        packets,
                        list(capture.warnings),
                        bool(capture.damaged),
                        int(capture.slow_path),
                    )

    def summary(self, top: int = 10) -> dict[str, Any]:
        return self.stats.summary(top)


@dataclass
class ClassifyResult:
    """Per-packet columns of a whole run (all files concatenated) and its summary.

    `columns` holds compact numpy codes, one element per packet: `file` (position in
    `files`), `index`, `verdict`/`reason`/`direction` (the codes of classifier.codes),
    `instance` (position in `instance_ids`, -1 for none) and `rule` (position in `rule_ids`
    and `rule_groups`, -1 for none). `named()` turns them into the columns of spec section 6,
    the same as the `--packets` CSV.
    """

    columns: dict[str, np.ndarray]
    summary: dict[str, Any]
    files: list[str]
    instance_ids: list[str]
    rule_ids: list[str]
    rule_groups: list[str]

    def named(self) -> dict[str, np.ndarray]:
        """file, index, verdict, reason, instance, direction, group, rule as text columns
        ("" where a field does not apply), by vectorised lookup."""
        c = self.columns
        rules = np.array([""] + self.rule_ids, dtype=object)
        groups = np.array([""] + self.rule_groups, dtype=object)
        return {
            "file": np.array(self.files, dtype=object)[c["file"]]
            if self.files
            else c["file"].astype(object),
            "index": c["index"],
            "verdict": names(VERDICT_NAMES, c["verdict"]),
            "reason": names(REASON_NAMES, c["reason"]),
            "instance": np.array([""] + self.instance_ids, dtype=object)[c["instance"] + 1],
            "direction": names(DIRECTION_NAMES, c["direction"]),
            "group": groups[c["rule"] + 1],
            "rule": rules[c["rule"] + 1],
        }

    def to_pandas(self) -> Any:
        """The section-6 columns (`named()`) as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.named())


RESULT_COLUMNS = ("file", "index", "verdict", "reason", "rule", "instance", "direction")


def classify_pcap(
    engine: BatchEngine,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    stateful: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
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
        engine, stateful, batch_size, workers=workers, client=client, blocksize=blocksize
    )
    parts: dict[str, list[np.ndarray]] = {name: [] for name in RESULT_COLUMNS}
    for result in run.run(path_list):
        parts["file"].append(np.full(len(result.batch), result.file_number, np.int32))
        parts["index"].append(result.batch.index.copy())
        parts["verdict"].append(result.verdict)
        parts["reason"].append(result.reason)
        parts["rule"].append(result.rule)
        parts["instance"].append(result.instance)
        parts["direction"].append(result.direction)
    dtypes = {"file": np.int32, "index": np.int64, "rule": np.int32, "instance": np.int32}
    columns = {
        name: np.concatenate(chunks) if chunks else np.zeros(0, dtypes.get(name, np.uint8))
        for name, chunks in parts.items()
    }
    return ClassifyResult(
        columns,
        run.summary(),
        path_list,
        engine.instance_ids,
        [rule.id for rule in engine.rules],
        [rule.group_id for rule in engine.rules],
    )
