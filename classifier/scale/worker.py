"""Set-up of a worker process of a local cluster (`classify --workers`): Dask preloads it.

Ctrl-C reaches every process of the terminal's process group, the local workers too; the
command itself stops them (scale.md section 5), so they ignore it rather than die mid-task
and print their own tracebacks.

A local worker lives for one run: once it has loaded Dask and what its tasks run, all of it is
frozen out of the garbage collector (`gc.freeze`), so that neither the collections during the
run nor the last one, at the worker's exit, walk it again (a quarter of a second of both vCPUs
at the end of every `--workers 2` run: RESULTS.md section 15).
"""

from __future__ import annotations

import contextlib
import gc
import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    with contextlib.suppress(ValueError):  # not the main thread: nothing to set
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import classifier.scale.tasks  # noqa: F401 - what every task runs, loaded before the freeze

    gc.freeze()
