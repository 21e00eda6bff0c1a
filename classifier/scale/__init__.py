"""The scale-out room: one classification on many cores and machines, on Dask, exactly as one
process (scale.md).

Design note
-----------
What runs where. The driver (the command, or the caller of the Python API) loads the policy,
compiles the `Engine` and hands it to the cluster once (one task holds it; every worker
fetches it from whoever has it). It opens each capture in turn and frames it without
decoding (`Capture.cut`: the reader's core walks record headers, about ten times faster than
a full read) to cut it into blocks of whole records (pcapng: whole blocks) of at most
`blocksize` bytes. A block is a reader state (format, byte order, link type and snap length,
the pcapng interfaces in force), a byte range and the index of its first record: a worker
opens the capture itself at its absolute path, restores that state and reads just that range
(`Capture.resume`, `Capture.batches(end=...)`). Capture bytes never leave the machine that
reads them, and never pass through the scheduler.

For each block, in capture order, inside a window of `2 x workers + 2` blocks in flight:
1. decode (on any worker): read the block, judge every row by the rules (`Engine.classify`,
   stateless verdicts), keep the running maximum of its timestamps, and sort its rows into
   groups: state groups (rows the rules judged, by a symmetric hash of their key's two
   addresses: the quoted header's for an ICMP error that quotes one, so that a connection,
   both directions, and every error quoting it fall in one group) and fragment groups (usable
   fragments, by their outer addresses: a datagram is whole in one group).
2. fragments (stateful, a block with fragments): one chain per fragment group, a step per
   block, joins them at the capture's clock (`ConnectionTracker.join_fragments(times=)`).
   When the block has later fragments, a `rejoin` step writes their joined fields back, judges
   them again by the rules and only then sorts the rows into state groups, so a fragmented
   ICMP error's later fragments (errors only once joined) land in the quoted connection's
   group with its first fragment.
3. state (stateful): one chain per state group, a step per block, applies connection state
   (`ConnectionTracker.apply(times=)`) to the block's rows of the group. Each step prefers the
   worker of its group, so chains spread over the workers and their trackers stay put.
4. finish (on the block's worker): the state's answers written back into the block's
   verdicts as one tracker would have left them, then the block's statistics
   (`SummaryBuilder.add`, by batches as one process) and, when asked, its `BatchResult`.
The driver takes the finished blocks back in capture order, merges their statistics
(`SummaryBuilder.merge`: sums per key, the mergeable timeline, top-denied ties broken by the
tuple's hash as in one process), adds each capture's facts after its last block, and yields
the results.

The clock. A record's effective time is the largest timestamp up to it in the whole capture,
across blocks and files. A step of block i is given `carry`, the largest timestamp of every
block before i (the driver knows it from each block's small `meta` once decoded), and each row
its block-local running maximum: the row's effective time is the larger of the two, which the
trackers take instead of their own packets' times.

What travels. To a decode task: the block (a reader state and offsets, under 1 KiB) and the
engine (once per worker). Decode -> state step: per row the columns of its key and flags and
its stateless verdict and rule, 30 to 60 bytes (IPv4 addresses as 4 bytes, a quoted header
only for the errors that have one). State step -> finish: one byte per row (the state's
reason, created, midstream). Finish -> driver: a partial summary (the counts, the block's
timeline, its distinct denied tuples) and, only when the caller wants per-packet results
(`--packets`, `run()` in the API), the block's columns. Steps of a chain hand their tracker to
the next, on the same worker unless it was lost.

Memory per worker: the blocks in flight on it (about 1.5 x blocksize of columns each for the
decoded rows and their verdicts) plus its groups' trackers (bounded as in one process: the
live connections and recent first fragments of its share of the keys). Whatever the
capture's size, a worker holds at most the window's blocks.

Faults. Tasks are deterministic and never change their inputs (a chain's tracker is the one
thing handed on, and each step checks it got it as the previous step left it), so a task run
again after its worker was lost gives the same output: Dask recomputes what was lost from the
lineage and the results stay exact; the driver notes the lost worker once. What cannot be
survived ends the run with a `ClusterError` (exit 1) and no partial output: no worker for
10 s, the scheduler unreachable for 10 s, a task lost with its worker 3 times, a worker
whose sg-classifier differs from the command's; a capture that only a worker cannot read is a
`WorkerCaptureError` (exit 2).

Input without random access (a compressed capture, standard input): the blocks need
positions in a file that every worker can open, so the scale-out refuses such input with one
line rather than read it in the driver.

Modules: `blocks` (cutting captures into blocks), `tasks` (what the workers run), `runner`
(the driver: cluster, window, faults), `options` (the options' checks), `worker` (the local
workers' set-up). Imports the engine and everything below it; Dask only when a run asks for a
cluster.
"""

from classifier.scale.options import DEFAULT_BLOCKSIZE, parse_address, parse_blocksize

__all__ = ["DEFAULT_BLOCKSIZE", "parse_address", "parse_blocksize"]
