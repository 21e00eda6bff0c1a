"""Pure-Python twin of `classifier.engine._engine`: the same names, the same results, plain loops.

Selected by CLASSIFIER_NO_EXTENSIONS=1; the tests run the engine on both and compare.
"""

from __future__ import annotations

import numpy as np

from classifier.codes import (
    DIRECTION_EGRESS,
    DIRECTION_INGRESS,
    DIRECTION_NONE,
    ICMP_CODE_UNKNOWN,
    ICMP_PORT_BASE,
    ICMP_PROTOCOLS,
    L4_ICMP,
    L4_ICMP_NO_CODE,
    L4_PORTS,
    PORT_PROTOCOLS,
    PORT_UNKNOWN,
    REASON_IMPLICIT_DENY,
    REASON_NONE,
    REASON_RULE,
    STATUS_MALFORMED,
    STATUS_NOT_IP,
    VERDICT_ALLOW,
    VERDICT_DENY,
    VERDICT_MALFORMED,
    VERDICT_NOT_IP,
    VERDICT_UNMANAGED,
)
from classifier.engine.hashing import fmix64

_MASK64 = (1 << 64) - 1


def address_hash(hi: int, lo: int, version: int) -> int:
    h = ((hi * 0x9E3779B97F4A7C15) & _MASK64) ^ ((lo * 0xC2B2AE3D27D4EB4F) & _MASK64) ^ version
    h ^= h >> 29
    h = (h * 0xBF58476D1CE4E5B9) & _MASK64
    h ^= h >> 32
    return h


def owners(
    addresses: np.ndarray,
    ip_version: np.ndarray,
    slot_hi: np.ndarray,
    slot_lo: np.ndarray,
    slot_version: np.ndarray,
    slot_owner: np.ndarray,
    out: np.ndarray,
) -> None:
    mask = len(slot_owner) - 1
    for i in range(len(addresses)):
        out[i] = -1
        version = int(ip_version[i])
        if version not in (4, 6):
            continue
        raw = bytes(addresses[i])
        hi, lo = int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")
        slot = address_hash(hi, lo, version) & mask
        while slot_owner[slot] >= 0:
            if slot_hi[slot] == hi and slot_lo[slot] == lo and slot_version[slot] == version:
                out[i] = slot_owner[slot]
                break
            slot = (slot + 1) & mask


def port_column(
    protocol: np.ndarray,
    l4: np.ndarray,
    dport: np.ndarray,
    icmp_type: np.ndarray,
    icmp_code: np.ndarray,
    out: np.ndarray,
) -> None:
    for i in range(len(protocol)):
        p = int(protocol[i])
        if p in PORT_PROTOCOLS and l4[i] & L4_PORTS:
            out[i] = dport[i]
        elif p in ICMP_PROTOCOLS and l4[i] & L4_ICMP:
            code = ICMP_CODE_UNKNOWN if l4[i] & L4_ICMP_NO_CODE else int(icmp_code[i])
            out[i] = ICMP_PORT_BASE + int(icmp_type[i]) * 512 + code
        else:
            out[i] = PORT_UNKNOWN


def combine_sides(
    status: np.ndarray,
    src_owner: np.ndarray,
    dst_owner: np.ndarray,
    egress_rule: np.ndarray,
    egress_allow: np.ndarray,
    ingress_rule: np.ndarray,
    ingress_allow: np.ndarray,
    verdict: np.ndarray,
    reason: np.ndarray,
    rule: np.ndarray,
    instance: np.ndarray,
    direction: np.ndarray,
    new_instance: np.ndarray,
    new_direction: np.ndarray,
) -> None:
    for i in range(len(status)):
        reason[i], rule[i], instance[i], direction[i] = REASON_NONE, -1, -1, DIRECTION_NONE
        new_instance[i], new_direction[i] = -1, DIRECTION_NONE
        if status[i] == STATUS_NOT_IP:
            verdict[i] = VERDICT_NOT_IP
            continue
        if status[i] == STATUS_MALFORMED:
            verdict[i] = VERDICT_MALFORMED
            continue
        has_egress, has_ingress = src_owner[i] >= 0, dst_owner[i] >= 0
        if not has_egress and not has_ingress:
            verdict[i] = VERDICT_UNMANAGED
            continue
        denied = (has_egress and not egress_allow[i]) or (has_ingress and not ingress_allow[i])
        verdict[i] = VERDICT_DENY if denied else VERDICT_ALLOW
        # reported: the sender's egress if it denies, else the receiver's ingress, else egress
        if has_egress and (not egress_allow[i] or not has_ingress):
            rule[i], instance[i], direction[i] = egress_rule[i], src_owner[i], DIRECTION_EGRESS
        else:
            rule[i], instance[i], direction[i] = ingress_rule[i], dst_owner[i], DIRECTION_INGRESS
        reason[i] = REASON_RULE if rule[i] >= 0 else REASON_IMPLICIT_DENY
        # section 6: a state-allowed packet reports the receiver's ingress, else the egress
        if has_ingress:
            new_instance[i], new_direction[i] = dst_owner[i], DIRECTION_INGRESS
        else:
            new_instance[i], new_direction[i] = src_owner[i], DIRECTION_EGRESS


_TUPLE_WEIGHTS = (1, 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                  0xD6E8FEB86659FD93)  # fmt: skip


def _tuple_hash(src: bytes, dst: bytes, rest: int) -> int:
    """Each word through a finaliser, summed with odd weights, finalised (as the compiled
    twin, whose note says why)."""
    words = (
        int.from_bytes(src[:8], "little"),
        int.from_bytes(src[8:], "little"),
        int.from_bytes(dst[:8], "little"),
        int.from_bytes(dst[8:], "little"),
        rest,
    )
    total = sum(fmix64(word) * weight for word, weight in zip(words, _TUPLE_WEIGHTS, strict=True))
    return fmix64(total & _MASK64)


def _slot_of(slot_key: np.ndarray, slot_index: np.ndarray, key: int) -> int:
    """The slot holding `key` in an open-addressing tuple table, else the empty slot that
    ends its probe sequence (index -1)."""
    mask = len(slot_index) - 1
    slot = key & mask
    while slot_index[slot] >= 0 and int(slot_key[slot]) != key:
        slot = (slot + 1) & mask
    return slot


def count_tuples(
    src: np.ndarray,
    dst: np.ndarray,
    ip_version: np.ndarray,
    protocol: np.ndarray,
    l4: np.ndarray,
    dport: np.ndarray,
    icmp_type: np.ndarray,
    icmp_code: np.ndarray,
    rows: np.ndarray,
    slot_key: np.ndarray,
    slot_index: np.ndarray,
    out_key: np.ndarray,
    out_count: np.ndarray,
    out_row: np.ndarray,
) -> int:
    mask = len(slot_index) - 1
    distinct = 0
    for row in rows.tolist():
        port = 1 << 20  # no port (not TCP/UDP/SCTP/ICMP, or not known)
        if l4[row] & L4_PORTS:
            port = int(dport[row])
        elif l4[row] & L4_ICMP:  # an ICMP packet's "port": its type and code
            port = int(icmp_type[row]) * 256 + int(icmp_code[row])
        rest = port | int(protocol[row]) << 40 | int(ip_version[row]) << 48
        key = _tuple_hash(bytes(src[row]), bytes(dst[row]), rest)
        slot = _slot_of(slot_key, slot_index, key)
        if slot_index[slot] < 0:
            slot_index[slot], slot_key[slot] = distinct, key
            out_key[distinct], out_count[distinct], out_row[distinct] = key, 0, row
            distinct += 1
        out_count[slot_index[slot]] += 1
    for d in range(distinct):  # all -1 again: only the slots used are reset
        slot = int(out_key[d]) & mask
        while slot_index[slot] < 0 or int(slot_key[slot]) != int(out_key[d]):
            slot = (slot + 1) & mask
        slot_index[slot] = -1
    return distinct


def fold_tuples(
    map_key: np.ndarray,
    map_index: np.ndarray,
    keys: np.ndarray,
    counts: np.ndarray,
    size: int,
    in_keys: np.ndarray,
    in_counts: np.ndarray,
    new: np.ndarray,
) -> int:
    added = 0
    for k, (key, count) in enumerate(zip(in_keys.tolist(), in_counts.tolist(), strict=True)):
        slot = _slot_of(map_key, map_index, key)
        if map_index[slot] >= 0:
            counts[map_index[slot]] += count
            continue
        map_index[slot], map_key[slot] = size + added, key
        keys[size + added], counts[size + added] = key, count
        new[added] = k
        added += 1
    return added


def index_tuples(map_key: np.ndarray, map_index: np.ndarray, keys: np.ndarray) -> None:
    for i, key in enumerate(keys.tolist()):  # distinct keys: each probe ends at an empty slot
        slot = _slot_of(map_key, map_index, key)
        map_index[slot], map_key[slot] = i, key


def side_rows(
    src_owner: np.ndarray,
    dst_owner: np.ndarray,
    ip_version: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    plan: np.ndarray,
    packet: np.ndarray,
    owner: np.ndarray,
    direction: np.ndarray,
    is_v6: np.ndarray,
    remote_v4: np.ndarray,
    first_table: np.ndarray,
) -> tuple[int, int]:
    m = 0
    split = 0
    for side_direction, owners, remotes in (
        (DIRECTION_EGRESS, src_owner, dst),
        (DIRECTION_INGRESS, dst_owner, src),
    ):
        for i in range(len(owners)):
            if owners[i] < 0:
                continue
            v6 = int(ip_version[i] == 6)
            packet[m], owner[m], direction[m], is_v6[m] = i, owners[i], side_direction, v6
            remote_v4[m] = 0 if v6 else int.from_bytes(bytes(remotes[i, 12:16]), "big")
            first_table[m] = plan[owners[i], side_direction, v6, 0]
            m += 1
        if side_direction == DIRECTION_EGRESS:
            split = m
    return m, split
