"""Set-up of a worker process of a local cluster (`classify --workers`): Dask preloads it.

Ctrl-C reaches every process of the terminal's process group, the local workers too; the
command itself stops them (scale.md section 5), so they ignore it rather than die mid-task
and print their own tracebacks.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    with contextlib.suppress(ValueError):  # not the main thread: nothing to set
        signal.signal(signal.SIGINT, signal.SIG_IGN)
