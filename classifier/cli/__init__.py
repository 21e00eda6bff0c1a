"""The command-line room: `sgclassify`, argument parsing and printing only.

One module per command (`validate`, `check`, `packets`, `classify`, `diff`, `lint`,
`exposure`, `completion`, `manpage`), each with `add_parser` and `run`; `main` assembles the
parser and turns every `ClassifierError` into one line and an exit code. May import every
other room; nothing imports this but `classifier.__main__` and the `sgclassify` script
(both run `command`).

Importing this module (what the `sgclassify` script does first) loads the command modules
under a Ctrl-C handler that prints one line and exits 130, the same as a Ctrl-C later in
`main`; the previous handler is restored at the end of the import.
"""

from __future__ import annotations

import gc
import os
import signal
from typing import NoReturn

from classifier import _guard_start_up

_PREVIOUS_HANDLER = _guard_start_up()  # restored at the end of this module

# One thread of computation per process: the kernels are the package's own loops, numpy's
# BLAS is on no path of the command, and the idle threads OpenBLAS starts with numpy would
# only take start-up CPU from the cores the run needs (RESULTS.md, section 12). Set before
# anything imports numpy; the command's Dask workers inherit it. A user's own value stays.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from classifier.cli.main import build_parser, main  # noqa: E402

__all__ = ["build_parser", "command", "main"]


def command() -> NoReturn:
    """The `sgclassify` executable (and `python -m classifier`): `main` on the process's
    arguments, and exit with its code. Everything loaded so far (the command modules, numpy)
    is first frozen out of the garbage collector (`gc.freeze`): the process ends with the
    command, and its collections, the last one at exit too, need not walk those objects
    again (about 5 % of a one-record run: RESULTS.md section 15). `main` itself does not
    freeze: scripts and tests call it in processes that go on."""
    gc.freeze()
    raise SystemExit(main())


if _PREVIOUS_HANDLER is not None:
    signal.signal(signal.SIGINT, _PREVIOUS_HANDLER)
