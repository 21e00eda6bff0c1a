"""The first-match room: generic packet classification, rules in priority order, batches of packets.

Owns the core every policy is compiled onto: `build` (interval maps, equivalence classes, bit
matrices: the build phase), `tables` (the compiled structure's flat arrays; its docstring is the
design note), the lookup kernel twins `_lookup.pyx` / `_lookup_py.py` with their C kernel
(`acl_lookup.h`, the run phase), `matcher` (the facade: validation, conversion, `compile`) and
`classbench` (the field's rule and trace files). May import `classifier.errors` and
`classifier.codes` only: it knows nothing of security groups.

ClassBench files (`acl.SAMPLE_RULES` / `acl.SAMPLE_TRACE`: a small bundled set)::

    from classifier import acl
    rules = acl.read_classbench_rules(path)     # RuleSet, len(rules) == rule lines
    trace = acl.read_classbench_trace(path)     # structured array: src, dst, sport, dport, proto
    matcher = acl.compile(rules)
    hits = matcher.match(trace)                 # int32: first matching rule (0-based) or -1
    matcher.memory_bytes                        # bytes held by the compiled structure

Programmatic rules (the security-group engine)
----------------------------------------------
A rule set is a numpy structured array, one row per rule, row index = priority (0 first):

* `RULE_V4_DTYPE`: src_lo/src_hi, dst_lo/dst_hi (uint32 addresses, inclusive ranges: any range,
  not only prefixes, matched exactly), sport_lo/sport_hi, dport_lo/dport_hi (uint32, inclusive),
  proto/proto_mask (uint8: a packet matches when proto & mask == rule.proto & mask; mask 0 = any).
* `RULE_V6_DTYPE`: the same with 128-bit addresses as two uint64 words, most significant first
  (field shape (2,)).

`wildcard_rules(n, version)` returns n rows matching everything, to be narrowed field by field;
`RuleRows(version).add(src=(lo, hi), dport=(lo, hi), proto=6, proto_mask=0xFF)` builds the same
row by row from Python integers (omitted fields stay wildcards), and `compile()` takes either.
Ports are uint32 keys: the wildcard is [0, PORT_MAX]; a packet whose ports are unknown carries
`PORT_UNKNOWN` (0x10000), which every range within 0..65535 excludes and the wildcard includes.
ICMP type/code can ride in dport (the security-group engine uses 0x20000 + type * 512 + code,
so that a type-only rule is one range and a packet with an unknown code can be told apart).

Packets are columns (a structured array, or any mapping name -> array), `n` rows each:

* IPv4 matcher: src, dst as uint32 (host order), or (n, 16) uint8 big-endian rows
  (IPv4-mapped, as in `classifier.packets`: bytes 12..15 are used); sport, dport as unsigned
  integers <= 0xFFFFFFFF; proto as integers 0..255.
* IPv6 matcher: src, dst as (n, 2) uint64 (most significant word first) or (n, 16) uint8
  big-endian rows; sport, dport, proto as above.

`match()` returns int32: the index of the first rule matching all five fields, -1 for none.
`match_columns(src, dst=None, sport=None, dport=None, proto=None)` takes the columns directly;
an omitted column is zeros (fine for a field every rule leaves as a wildcard).
Building a 10-rule set takes about a millisecond, so hundreds of small sets are cheap; matchers
pickle (plain numpy arrays) and report `memory_bytes`.  The lookup runs without the GIL and
never writes the tables, so one matcher may serve several threads.

Errors (all `ClassifierError`): `RuleFileError` / `TraceFileError` name the file and line of a
bad ClassBench file; `AclError` covers bad arrays and empty ranges; `RuleSetTooLarge` refuses a
rule set whose build would exhaust memory.  The compiled kernel or its pure-Python twin
(`CLASSIFIER_NO_EXTENSIONS=1`) runs each lookup (`classifier.acl.kernels`).
"""

from classifier.acl.build import PORT_MAX, RULE_V4_DTYPE, RULE_V6_DTYPE, RuleSetTooLarge
from classifier.acl.classbench import (
    SAMPLE_RULES,
    SAMPLE_TRACE,
    read_classbench_rules,
    read_classbench_trace,
    read_firstmatch,
)
from classifier.acl.matcher import (
    PACKET_V4_DTYPE,
    PACKET_V6_DTYPE,
    PORT_ANY_HI,
    AclError,
    Matcher,
    RuleFileError,
    RuleRows,
    RuleSet,
    TraceFileError,
    compile,
    wildcard_rules,
)
from classifier.codes import PORT_UNKNOWN

__all__ = [
    "SAMPLE_RULES",
    "SAMPLE_TRACE",
    "PACKET_V4_DTYPE",
    "PACKET_V6_DTYPE",
    "PORT_ANY_HI",
    "PORT_MAX",
    "PORT_UNKNOWN",
    "RULE_V4_DTYPE",
    "RULE_V6_DTYPE",
    "AclError",
    "Matcher",
    "RuleFileError",
    "RuleRows",
    "RuleSet",
    "RuleSetTooLarge",
    "TraceFileError",
    "compile",
    "read_classbench_rules",
    "read_classbench_trace",
    "read_firstmatch",
    "wildcard_rules",
]
