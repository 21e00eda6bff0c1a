"""sg-classifier: what would these security-group rules have done to this traffic?

The public API:

    import classifier
    policy = classifier.load_policy("examples/web-db.yaml")
    engine = classifier.Engine(policy)
    result = engine.classify_pcap("pcaps/web.pcap", stateful=True)
    result.columns["verdict"], result.summary["rules"], result.to_pandas()

For captures larger than memory, stream: `classifier.Classification(engine).run(paths)`.
`classifier.lint(policy)` is the policy analysis (`classifier.analysis`). The decoder alone is
`classifier.pcap.read_batches`; the generic first-match core is `classifier.acl`; the
plain-Python oracle is `classifier.reference`. The package's rooms, in the order data flows
through them: `policy`, `acl`, `pcap`, `engine`, `analysis`, `report`, `cli` (ARCHITECTURE.md
has the map).
"""

import _signal  # type: ignore[import-not-found]  # builtin: cheaper than `signal`
import sys
from typing import Any


def _quit_at_start_up(number: int, frame: Any) -> None:
    """Ctrl-C while the package or the command line loads (what `sgclassify` does first):
    one line and exit 130, never a traceback (SystemExit prints none)."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    print("interrupted", file=sys.stderr)
    raise SystemExit(130)


def _guard_start_up() -> Any:
    """Install `_quit_at_start_up`; returns the handler to restore (None off the main thread).
    Each module that guards its own import restores the handler at its end."""
    try:
        return _signal.signal(_signal.SIGINT, _quit_at_start_up)
    except ValueError:  # not the main thread
        return None


_PREVIOUS_HANDLER = _guard_start_up()

from typing import TYPE_CHECKING  # noqa: E402

from classifier.errors import (  # noqa: E402
    ClassifierError,
    PcapError,
    PolicyError,
    Problem,
    UsageError,
)

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from classifier.analysis.lint import lint
    from classifier.engine import Classification, ClassifyResult, Engine
    from classifier.policy import load_policy

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy: `import classifier` stays cheap, and the CLI imports only what a command needs.
    if name == "load_policy":
        from classifier.policy import load_policy

        return load_policy
    if name in ("Engine", "Classification", "ClassifyResult"):
        from classifier import engine

        return getattr(engine, name)
    if name == "lint":
        from classifier.analysis.lint import lint

        return lint
    raise AttributeError(f"module 'classifier' has no attribute {name!r}")


__all__ = [
    "ClassifierError",
    "Classification",
    "ClassifyResult",
    "Engine",
    "PcapError",
    "PolicyError",
    "Problem",
    "UsageError",
    "__version__",
    "lint",
    "load_policy",
]

if _PREVIOUS_HANDLER is not None:
    _signal.signal(_signal.SIGINT, _PREVIOUS_HANDLER)
