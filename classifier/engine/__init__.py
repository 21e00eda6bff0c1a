"""The engine room: a policy compiled onto the first-match core, judging captures.

Owns: the build phase (`build`: per-sequence tables packed into chunk matchers, the owner
table), the run phase (`engine`: stateless verdicts of a batch), the result columns
(`columns`), connection tracking (`conntrack` over the `_conntrack` twins, tables in
`layouts`), the statistics (`stats`: the summary document), and the pipeline that strings
reader, engine, state and statistics together (`pipeline`), by default through the fused pass
(`_fused`: owners, lookups, state and counters in one set of C loops per block, equal to the
pieces one after the other). `kernels` picks the compiled modules or their pure twins.

May import `classifier.errors`, `classifier.codes`, `classifier.packets`, `classifier.policy`,
`classifier.acl` and `classifier.pcap`; never the reports or the command line.

    engine = Engine(policy)
    result = engine.classify_pcap("web.pcap", stateful=True)   # ClassifyResult
    for batch_result in Classification(engine).run(paths): ...   # streaming
"""

from classifier.engine.columns import BatchResult, StatelessVerdicts
from classifier.engine.engine import Engine, PacketDecision, SideDecision
from classifier.engine.pipeline import Classification, ClassifyResult, classify_pcap

__all__ = [
    "BatchResult",
    "Classification",
    "ClassifyResult",
    "Engine",
    "PacketDecision",
    "SideDecision",
    "StatelessVerdicts",
    "classify_pcap",
]
