"""The flat tables of connection tracking, shared by the tracker twins.

`_conntrack.pyx` (C structs `Flow` and `Fragment`) and `_conntrack_py.py` keep their state in
numpy arrays of these dtypes, so a tracker's tables are inspectable and picklable and both
twins hold byte-identical state. The compiled module imports this file and checks, when it
loads, that its structs and its compile-time constants agree with what is here: a mismatch
fails the import, never a run. Read `_conntrack.pyx` for the design note.
"""

from __future__ import annotations

import numpy as np

# kind of a flow key (bits 40..47 of the key's meta word)
KIND_PORTS = 1  # TCP/UDP/SCTP with known ports
KIND_ICMP = 2  # an ICMP query, the identifier in the port_lo bits
KIND_ADDR = 3  # the addresses only (every other protocol, unknown ports)

# flow flags
FLAG_FIN_RST = 1  # a FIN or RST was seen: TCP's short timeout applies
FLAG_BOTH = 2  # packets were seen in both directions
FLAG_INIT_LOW = 4  # the initiator is the key's lo endpoint
FLAG_MIDSTREAM = 8  # created by a TCP packet that was not a bare SYN
FLAG_GONE = 16  # forgotten (evicted by the connection limit): expired whatever its time

# timeout classes of a connection (the eviction heaps, one per class: within a class every
# connection has the same timeout, so the oldest last packet is also the first to expire)
CLASS_TCP = 0  # TCP, no FIN/RST seen
CLASS_TCP_CLOSING = 1  # TCP after a FIN or RST
CLASS_ICMP = 2  # ICMP queries
CLASS_ONE_WAY = 3  # every other protocol, one direction seen
CLASS_BOTH = 4  # ... both directions seen
N_CLASSES = 5

MIN_CAPACITY = 64  # slots of a table, at the least (a power of two)
CLOCK_START = -(2**63)  # the clock before the first record

FLOW_DTYPE = np.dtype(
    [
        ("key", "<u8", (5,)),  # meta, lo endpoint address (2 words), hi endpoint address
        ("last", "<i8"),  # effective time of the last allowed packet, ns
        ("rule", "<i4"),  # global index of the creating rule, -1: none
        ("used", "u1"),  # 1: holds a key (alive or expired)
        ("flags", "u1"),  # FLAG_*
        ("direction", "u1"),  # with flow records: the creating packet's reported direction
        ("pad", "u1"),
        ("seq", "<i8"),  # creation number of the tracked connection; -1: forgotten (evicted,
        # or expired and dropped); one slot = one 64-byte cache line
    ]
)
FRAGMENT_DTYPE = np.dtype(
    [
        ("key", "<u8", (5,)),  # version << 56 | next header << 48 | ip_id, src (2 words), dst
        ("ts", "<i8"),  # effective time of the first fragment, ns
        ("sport", "<u2"),
        ("dport", "<u2"),
        ("icmp_id", "<u2"),
        ("inner_sport", "<u2"),  # an ICMP error's quoted header (lent with L4_INNER*)
        ("inner_dport", "<u2"),
        ("inner_icmp_id", "<u2"),
        ("icmp_type", "u1"),
        ("icmp_code", "u1"),
        ("l4", "u1"),  # the L4_* bits it lends (ports, ICMP, ICMP id, quoted header)
        ("used", "u1"),
        ("protocol", "u1"),  # the first fragment's upper-layer protocol
        ("inner_protocol", "u1"),
        ("inner_icmp_type", "u1"),
        ("inner_src", "u1", (16,)),
        ("inner_dst", "u1", (16,)),
        ("pad", "u1", (29,)),  # one slot = two 64-byte cache lines
    ]
)
# the counters of a connection's record, beside its flow slot (only with flow records)
FLOWSTAT_DTYPE = np.dtype(
    [
        ("first_ns", "<i8"),  # the creating packet's timestamp as recorded
        ("last_ns", "<i8"),  # the largest recorded timestamp among the counted packets
        ("index", "<i8"),  # the creating packet's index in its file
        ("initiator_packets", "<i8"),
        ("initiator_bytes", "<i8"),
        ("responder_packets", "<i8"),
        ("responder_bytes", "<i8"),
        ("file", "<i4"),  # the creating packet's file number
        ("instance", "<i4"),  # the creating packet's reported side (-1: none)
    ]  # one 64-byte cache line, like the flow slot beside it
)
# a connection that left the table (evicted, dropped, replaced, or still there at the end)
RECORD_DTYPE = np.dtype([("flow", FLOW_DTYPE), ("stat", FLOWSTAT_DTYPE)])
