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
- stateless: one task (on any worker) reads the block and runs the fused pass over it
  (`tasks.classify_block`): every record depends on itself alone.
- stateful: the connection keys are split into lanes (one per worker by default), by a
  symmetric hash of the two addresses a row's state key is made of (an ICMP error's quoted
  header's, else its own; `tasks.lanes_of` on `classifier.scale._scale`, a nogil kernel with
  a pure twin that computes the same lanes bit for bit: a cluster may mix them), so that a
  connection, both directions, and every error quoting it fall in one lane. Each lane is a
  chain of steps, one per block, on the lane's worker (`tasks.lane_step`): read the whole
  block, join its fragments (every lane joins every fragment, so its fragment table is one
  process's, and a later fragment of an ICMP error gets its lane only once joined), then the
  fused pass (`classifier.engine.pipeline.classify_fused` with `lane_of`) over the block,
  classifying and counting only the lane's rows while the clock advances over every row.
  So a lane's tracker sees exactly the packets one process's tracker sees of its
  connections, at the same effective times, and its answers are one process's. A third task
  per block (`tasks.combine`) puts the lanes' columns together when per-packet results are
  wanted; it carries the block's facts (first and last timestamps, records scapy decoded).
  The lanes keep their statistics and send them once, after the last block
  (`tasks.lane_summary`).
The driver takes the finished blocks back in capture order, yields their results, adds each
capture's facts after its last block, and at the end merges the lanes' statistics
(`SummaryBuilder.merge`: sums per key, the mergeable timeline, top-denied ties broken by the
tuple's hash as in one process).

The clock. A record's effective time is the largest timestamp up to it in the whole capture,
across blocks and files. Every lane reads every record in capture order, so its tracker's
clock is the capture's, with nothing carried between tasks but the tracker.

What travels. To a lane step: the block (a reader state and offsets, under 1 KiB) and the
engine (once per worker); the lane's tracker and statistics stay on its worker, handed from
step to step. To the driver: per block a few facts and, only when the caller wants
per-packet results (`--packets`, `run()` in the API), the block's columns (each lane its
rows'); at the end each lane's statistics (counts, time line, distinct denied tuples).

Why every lane reads every block. The alternative, decoding each block once and sending each
lane its rows, moves 30 to 60 bytes per row between processes and runs the stateless and
stateful pieces apart; measured, that did 2.3 times one process's CPU work. Here a lane costs
about a + b / W for W lanes: a is what every lane does for every row (read, join fragments,
the lane hash, the clock), b the fused pass's work on its own rows. So W lanes speed a run up
by at most (a + b) / (a + b / W). On the benchmark machine a is about 0.5 s per 5M records:
15 % of one process's time with the fused pass of benchmarks/RESULTS.md section 11 (at most
1.7 for 2 workers, 1.37 measured with the cluster's own costs), 20 % with the faster pass of
section 12 (at most 1.65 for 2, 3.2 for 8, 4.6 for 64; 1.2 measured for 2), and with the
parts timed one by one on section 14's host a = 0.17 s (mostly the read) of one process's
0.82 s (at most 1.61 for 2; two busy vCPUs cost each about 15 % there, and 1.11 is measured):
the faster the pass, the more a weighs. More lanes than workers gain nothing; one read per
machine shared by its lanes, and for many machines a two-level cut (blocks per machine, lanes
per core), would lift that bound; neither is built. The driver runs on the same cores as a
local cluster's workers: cutting the capture, the scheduler's and the client's thread and the
final merge took 0.2-0.4 s of CPU per 5M records there (RESULTS.md section 16), against the
lanes' 1.4 s. Letting each lane cut the capture as it reads it (block k: the records that
start in its k-th byte range, the reader's state handed along the lane's chain with the
tracker) would take the cut off the machine; not built either. Measured since (section 17):
cutting the capture in a thread during the local cluster's start-up, and merging the lanes'
statistics as they arrive, gained nothing measurable (the lanes are the critical path), and
most of what a lane repeats is walking the capture's bytes, not decoding the other lanes'
records, so a reader that skips those would not lift the bound either.

Memory per worker: one piece of a block at a time per lane step (one batch of the reader's),
plus its lanes' trackers and statistics (bounded as in one process: its share of the live
connections, a whole fragment table, the distinct denied tuples it saw).

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
