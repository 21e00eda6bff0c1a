"""Connection records (flows contract, section 3): the tracker's records -> the flow table.

The counting happens in the connection tracker's native loops (`_conntrack.pyx`: a
`FlowStat` beside each flow slot, updated where a packet creates or refreshes a connection);
a connection's record (`RECORD_DTYPE`: its slot and its counters) is taken out when it
leaves the table: evicted by the connection limit, dropped or replaced once expired, dropped
by a rehash, or still there at the end of the run (`Tracker.finish_records`). This module
puts them in the order of their creating packets (the creation number `seq`) and turns them
into the columns of `FLOW_COLUMNS`, vectorised.

Memory: a record is 128 bytes, held until the end of the run (the order is only known then:
a long connection created early holds back every record after it).
"""

from __future__ import annotations

import numpy as np

from classifier.codes import (
    DIRECTION_NAMES,
    ICMP_TIMEOUT_NS,
    OTHER_ONE_WAY_TIMEOUT_NS,
    OTHER_TIMEOUT_NS,
    PROTO_TCP,
    TCP_CLOSING_TIMEOUT_NS,
    TCP_TIMEOUT_NS,
)
from classifier.engine.columns import BOOL, INT, TEXT, Labelled, Labels, decoded
from classifier.engine.layouts import (
    FLAG_BOTH,
    FLAG_FIN_RST,
    FLAG_INIT_LOW,
    FLAG_MIDSTREAM,
    KIND_ICMP,
    KIND_PORTS,
    RECORD_DTYPE,
)
from classifier.packets import address_labels

FLOW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file", TEXT), ("index", INT), ("first_ns", INT), ("last_ns", INT), ("ip_version", INT),
    ("protocol", INT), ("initiator", TEXT), ("initiator_port", INT), ("responder", TEXT),
    ("responder_port", INT), ("icmp_id", INT), ("initiator_packets", INT),
    ("initiator_bytes", INT), ("responder_packets", INT), ("responder_bytes", INT),
    ("instance", TEXT), ("direction", TEXT), ("group", TEXT), ("rule", TEXT),
    ("midstream", BOOL), ("fin_rst", BOOL), ("end", TEXT),
)  # fmt: skip
END_NAMES = np.array(["open", "expired"], dtype=object)


def in_order(parts: list[np.ndarray]) -> np.ndarray:
    """The records taken during a run, in the order of their creating packets."""
    records = np.concatenate(parts) if parts else np.zeros(0, RECORD_DTYPE)
    return records[np.argsort(records["flow"]["seq"], kind="stable")]


def _addresses(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """16-byte address rows from the key's two big-endian words."""
    words = np.stack([hi, lo], axis=1).astype(">u8")
    return np.ascontiguousarray(words).view(np.uint8).reshape(-1, 16)


def flow_table(
    records: np.ndarray, files: list[str], labels: Labels, end_ns: int
) -> dict[str, np.ndarray | Labelled]:
    """The rows of `FLOW_COLUMNS` of records in order: integer columns int64 (-1 = empty),
    booleans bool, text dictionary-encoded. `end_ns`: the latest timestamp of any record of
    the captures (the tracker's clock at the end)."""
    flow, stat = records["flow"], records["stat"]
    key = flow["key"].astype(np.uint64)
    meta = key[:, 0]
    version = (meta >> np.uint64(56)).astype(np.int64)
    protocol = ((meta >> np.uint64(48)) & np.uint64(0xFF)).astype(np.int64)
    kind = ((meta >> np.uint64(40)) & np.uint64(0xFF)).astype(np.int64)
    port_lo = ((meta >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.int64)
    port_hi = (meta & np.uint64(0xFFFF)).astype(np.int64)
    flags = flow["flags"].astype(np.int64)
    init_low = (flags & FLAG_INIT_LOW) != 0
    lo_address = _addresses(key[:, 1], key[:, 2])
    hi_address = _addresses(key[:, 3], key[:, 4])
    initiator = np.where(init_low[:, None], lo_address, hi_address)
    responder = np.where(init_low[:, None], hi_address, lo_address)
    ports = kind == KIND_PORTS
    known = np.ones(len(records), bool)
    tcp = protocol == PROTO_TCP
    timeout = np.where(
        tcp,
        np.where(flags & FLAG_FIN_RST, TCP_CLOSING_TIMEOUT_NS, TCP_TIMEOUT_NS),
        np.where(
            kind == KIND_ICMP,
            ICMP_TIMEOUT_NS,
            np.where(flags & FLAG_BOTH, OTHER_TIMEOUT_NS, OTHER_ONE_WAY_TIMEOUT_NS),
        ),
    )
    expired = end_ns - flow["last"].astype(np.int64) > timeout
    rule = flow["rule"].astype(np.int64) + 1
    return {
        "file": (stat["file"].astype(np.int64), np.array(files, dtype=object)),
        "index": stat["index"].astype(np.int64),
        "first_ns": stat["first_ns"].astype(np.int64),
        "last_ns": stat["last_ns"].astype(np.int64),
        "ip_version": version,
        "protocol": protocol,
        "initiator": address_labels(initiator, version, known),
        "initiator_port": np.where(ports, np.where(init_low, port_lo, port_hi), -1),
        "responder": address_labels(responder, version, known),
        "responder_port": np.where(ports, np.where(init_low, port_hi, port_lo), -1),
        "icmp_id": np.where(kind == KIND_ICMP, port_lo, -1),
        "initiator_packets": stat["initiator_packets"].astype(np.int64),
        "initiator_bytes": stat["initiator_bytes"].astype(np.int64),
        "responder_packets": stat["responder_packets"].astype(np.int64),
        "responder_bytes": stat["responder_bytes"].astype(np.int64),
        "instance": (stat["instance"].astype(np.int64) + 1, labels.instances),
        "direction": (flow["direction"].astype(np.int64), np.array(DIRECTION_NAMES, dtype=object)),
        "group": (rule, labels.groups),
        "rule": (rule, labels.rules),
        "midstream": tcp & ((flags & FLAG_MIDSTREAM) != 0),
        "fin_rst": tcp & ((flags & FLAG_FIN_RST) != 0),
        "end": (expired.astype(np.int64), END_NAMES),
    }


def decoded_flows(table: dict[str, np.ndarray | Labelled]) -> dict[str, np.ndarray]:
    """`flow_table` with its text columns as object arrays of str (the Python API)."""
    return {name: decoded(table[name]) for name, _ in FLOW_COLUMNS}
