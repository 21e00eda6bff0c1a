"""Policy analysis: lint, why-not and exposure, as set arithmetic over the key space.

Owns: `keyspace` (the one representation: match sets as boxes, decision maps per context,
and its design note), `lint` (analysis.md sections 3-4), `whynot` (check --why-not, section
5), `sockets` (netstat/ss parsers, exposure.md section 2) and `exposure` (exposure.md
sections 3-5). The commands that print them are `classifier.cli.lint` and `classifier.cli.exposure`.

May import: `classifier.policy` (the model), `classifier.errors`, `classifier.packets` (the
packet record and batch columns), and for exposure's capture mode the capture reader
(`classifier.pcap`) and the engine (`classifier.engine`). Nothing from the reports or the CLI.

The API: `classifier.lint(policy)` (that is `classifier.analysis.lint.lint`), returning a
`LintReport` of typed findings; `classifier.analysis.exposure.sockets_exposure` /
`capture_exposure`; `classifier.analysis.whynot.explain`.
"""
