"""sg-classifier: what would these security-group rules have done to this traffic?

The public API:

    import classifier
    policy = classifier.load_policy("examples/web-db.yaml")
    engine = classifier.Engine(policy)
    result = engine.classify_pcap("pcaps/web.pcap", stateful=True)
    result.columns["verdict"], result.summary["rules"], result.to_pandas()

For captures larger than memory, stream: `classifier.Classification(engine).run(paths)`.
`classifier.lint(policy)` is the policy analysis (classifier.analysis). The decoder alone is
`classifier.pcap.read_batches`; the generic first-match core is
`classifier.acl`; the plain-Python oracle is `classifier.reference`.
"""

from classifier.errors import ClassifierError, PcapError, PolicyError, Problem, UsageError

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy: `import classifier` stays cheap, and the CLI imports only what a command needs.
    if name == "load_policy":
        from classifier.loaders import load_policy

        return load_policy
    if name == "Engine":
        from classifier.engine import Engine

        return Engine
    if name == "lint":
        from classifier.analysis.lint import lint

        return lint
    if name in ("Classification", "ClassifyResult"):
        from classifier import pipeline

        return getattr(pipeline, name)
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
