"""The per-packet passes around the first-match lookup (the "run" phase), and one for stats.

Four loops that numpy would spend a dozen array passes on each:

- `owners`: local address -> instance index, through an open-addressing hash table built by
  `classifier.engine.build`: capacity a power of two, linear probing, at most half
  full, so a probe sequence is short and always ends at an empty slot (owner -1).
- `port_column`: the field the rules' port ranges are matched against: the destination port
  (TCP/UDP/SCTP), ICMP ICMP_BASE + type*512 + code (+ 256 in place of the code when it is
  unknown), or PORT_UNKNOWN when not known.
- `combine_sides`: spec section 3 (both sides must allow; which side is reported) and the
  section-6 side of state-allowed packets, from the two sides' lookup results.
- `count_tuples`: packets per denied (source, destination, protocol, port) tuple of a batch,
  through a per-batch hash table, for `stats.DeniedCounter`; `fold_tuples` and
  `index_tuples` keep the run's distinct tuples in a second, lasting table.

Codes are those of `classifier.codes`, cimported from `classifier/_codes.pxd`. Nothing here
raises: the engine hands in arrays of the right types and lengths.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from *:
    void __builtin_prefetch(const void* address) noexcept nogil

from classifier._codes cimport (
    DIRECTION_EGRESS,
    DIRECTION_INGRESS,
    DIRECTION_NONE,
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


def address_hash(uint64_t hi, uint64_t lo, uint64_t version):
    """The slot hash of an address, for the table builder (the same function as the loop's)."""
    return address_slot_hash(hi, lo, version)


def owners(
    const uint8_t[:, ::1] addresses,
    const uint8_t[::1] ip_version,
    const uint64_t[::1] slot_hi,
    const uint64_t[::1] slot_lo,
    const uint8_t[::1] slot_version,
    const int32_t[::1] slot_owner,
    int32_t[::1] out,
):
    """out[i] = the instance owning addresses[i] (of family ip_version[i]), else -1.
    Rows whose ip_version is neither 4 nor 6 get -1."""
    cdef Py_ssize_t i, n = addresses.shape[0]
    cdef uint64_t mask = slot_owner.shape[0] - 1
    with nogil:
        for i in range(n):
            out[i] = owner_of(_word(&addresses[i, 0]), _word(&addresses[i, 8]), ip_version[i],
                              &slot_hi[0], &slot_lo[0], &slot_version[0], &slot_owner[0], mask)


def port_column(
    const uint8_t[::1] protocol,
    const uint8_t[::1] l4,
    const uint16_t[::1] dport,
    const uint8_t[::1] icmp_type,
    const uint8_t[::1] icmp_code,
    uint32_t[::1] out,
):
    cdef Py_ssize_t i, n = protocol.shape[0]
    with nogil:
        for i in range(n):
            out[i] = port_value(protocol[i], l4[i], dport[i], icmp_type[i], icmp_code[i])


def combine_sides(
    const uint8_t[::1] status,
    const int32_t[::1] src_owner,
    const int32_t[::1] dst_owner,
    const int32_t[::1] egress_rule,
    const uint8_t[::1] egress_allow,
    const int32_t[::1] ingress_rule,
    const uint8_t[::1] ingress_allow,
    uint8_t[::1] verdict,
    uint8_t[::1] reason,
    int32_t[::1] rule,
    int32_t[::1] instance,
    uint8_t[::1] direction,
    int32_t[::1] new_instance,
    uint8_t[::1] new_direction,
):
    cdef Py_ssize_t i, n = status.shape[0]
    cdef bint has_egress, has_ingress, report_egress
    cdef int32_t matched
    with nogil:
        for i in range(n):
            reason[i] = REASON_NONE
            rule[i] = -1
            instance[i] = -1
            direction[i] = DIRECTION_NONE
            new_instance[i] = -1
            new_direction[i] = DIRECTION_NONE
            if status[i] == STATUS_NOT_IP:
                verdict[i] = VERDICT_NOT_IP
                continue
            if status[i] == STATUS_MALFORMED:
                verdict[i] = VERDICT_MALFORMED
                continue
            has_egress = src_owner[i] >= 0
            has_ingress = dst_owner[i] >= 0
            if not has_egress and not has_ingress:
                verdict[i] = VERDICT_UNMANAGED
                continue
            if (has_egress and not egress_allow[i]) or (has_ingress and not ingress_allow[i]):
                verdict[i] = VERDICT_DENY
            else:
                verdict[i] = VERDICT_ALLOW
            # reported: the sender's egress if it denies, else the receiver's ingress, else egress
            report_egress = has_egress and (not egress_allow[i] or not has_ingress)
            if report_egress:
                matched = egress_rule[i]
                instance[i] = src_owner[i]
                direction[i] = DIRECTION_EGRESS
            else:
                matched = ingress_rule[i]
                instance[i] = dst_owner[i]
                direction[i] = DIRECTION_INGRESS
            rule[i] = matched
            reason[i] = REASON_RULE if matched >= 0 else REASON_IMPLICIT_DENY
            # section 6: a state-allowed packet reports the receiver's ingress, else the egress
            if has_ingress:
                new_instance[i] = dst_owner[i]
                new_direction[i] = DIRECTION_INGRESS
            else:
                new_instance[i] = src_owner[i]
                new_direction[i] = DIRECTION_EGRESS


def count_tuples(
    const uint8_t[:, ::1] src,
    const uint8_t[:, ::1] dst,
    const uint8_t[::1] ip_version,
    const uint8_t[::1] protocol,
    const uint8_t[::1] l4,
    const uint16_t[::1] dport,
    const uint8_t[::1] icmp_type,
    const uint8_t[::1] icmp_code,
    const int64_t[::1] rows,
    uint64_t[::1] slot_key,
    int64_t[::1] slot_index,
    uint64_t[::1] out_key,
    int64_t[::1] out_count,
    int64_t[::1] out_row,
):
    """Packets per (source, destination, version, protocol, port) tuple among `rows`.

    A 64-bit hash names a tuple; an open-addressing table (`slot_index` all -1 on entry,
    capacity a power of two at least twice len(rows)) finds its output position, and is all -1
    again on return (only the slots used are reset). Writes the distinct tuples in order of
    first appearance (key, count, first row); returns how many.
    """
    cdef Py_ssize_t i, row, n = rows.shape[0], distinct = 0
    cdef uint64_t mask = slot_index.shape[0] - 1, key, slot
    with nogil:
        for i in range(n):
            row = rows[i]
            key = tuple_key(&src[row, 0], &dst[row, 0], ip_version[row], protocol[row], l4[row],
                            dport[row], icmp_type[row], icmp_code[row])
            slot = key & mask
            while slot_index[slot] >= 0 and slot_key[slot] != key:
                slot = (slot + 1) & mask
            if slot_index[slot] < 0:
                slot_index[slot] = distinct
                slot_key[slot] = key
                out_key[distinct] = key
                out_count[distinct] = 0
                out_row[distinct] = row
                distinct += 1
            out_count[slot_index[slot]] += 1
        tuples_reset(&slot_key[0], &slot_index[0], mask, &out_key[0], distinct)
    return distinct


cdef Py_ssize_t FOLD_AHEAD = 16  # keys whose map slots are fetched ahead of their probe


def fold_tuples(
    uint64_t[::1] map_key,
    int64_t[::1] map_index,
    uint64_t[::1] keys,
    int64_t[::1] counts,
    Py_ssize_t size,
    const uint64_t[::1] in_keys,
    const int64_t[::1] in_counts,
    int64_t[::1] new,
):
    """Add `in_counts` to the run's counts of the tuples `in_keys` (distinct), returning how
    many were new.

    The run's tuples are the entries keys[:size]/counts[:size]; the open-addressing map
    `map_key`/`map_index` (capacity a power of two, -1: empty) names each one's entry. A key
    not there yet becomes the next entry (size, size + 1, ...), its position in `in_keys`
    written to `new` in that order. The caller has made room: keys/counts for size +
    len(in_keys) entries, the map at most half full with them.
    """
    cdef Py_ssize_t k, n = in_keys.shape[0], added = 0
    cdef uint64_t mask = map_index.shape[0] - 1, key, slot
    with nogil:
        for k in range(n):
            if k + FOLD_AHEAD < n:  # the map outgrows the caches in a long scan
                slot = in_keys[k + FOLD_AHEAD] & mask
                __builtin_prefetch(&map_index[slot])
                __builtin_prefetch(&map_key[slot])
            key = in_keys[k]
            slot = key & mask
            while map_index[slot] >= 0 and map_key[slot] != key:
                slot = (slot + 1) & mask
            if map_index[slot] >= 0:
                counts[map_index[slot]] += in_counts[k]
                continue
            map_index[slot] = size + added
            map_key[slot] = key
            keys[size + added] = key
            counts[size + added] = in_counts[k]
            new[added] = k
            added += 1
    return added


def index_tuples(uint64_t[::1] map_key, int64_t[::1] map_index, const uint64_t[::1] keys):
    """Name the entries `keys` (distinct) in an empty map (all -1, at most half full with
    them), each by its position: the map `fold_tuples` probes, rebuilt after a resize."""
    cdef Py_ssize_t i, n = keys.shape[0]
    cdef uint64_t mask = map_index.shape[0] - 1, slot
    with nogil:
        for i in range(n):
            slot = keys[i] & mask
            while map_index[slot] >= 0:
                slot = (slot + 1) & mask
            map_index[slot] = i
            map_key[slot] = keys[i]


def side_rows(
    const int32_t[::1] src_owner,
    const int32_t[::1] dst_owner,
    const uint8_t[::1] ip_version,
    const uint8_t[:, ::1] src,
    const uint8_t[:, ::1] dst,
    const int32_t[:, :, :, ::1] plan,
    int64_t[::1] packet,
    int32_t[::1] owner,
    uint8_t[::1] direction,
    uint8_t[::1] is_v6,
    uint32_t[::1] remote_v4,
    int32_t[::1] first_table,
):
    """One row per evaluated side, egress sides first: the packet, the instance, the
    direction, the IP version, the remote's IPv4 word (the destination for egress, the source
    for ingress; 0 for IPv6) and the first table of the side's plan. Returns (rows, egress rows)."""
    cdef Py_ssize_t i, n = src_owner.shape[0], m = 0, split
    cdef const uint8_t* r
    cdef uint8_t v6
    with nogil:
        for i in range(n):
            if src_owner[i] >= 0:
                v6 = ip_version[i] == 6
                r = &dst[i, 12]
                packet[m] = i
                owner[m] = src_owner[i]
                direction[m] = DIRECTION_EGRESS
                is_v6[m] = v6
                remote_v4[m] = 0 if v6 else ((<uint32_t>r[0] << 24) | (<uint32_t>r[1] << 16)
                                             | (<uint32_t>r[2] << 8) | r[3])
                first_table[m] = plan[src_owner[i], DIRECTION_EGRESS, v6, 0]
                m += 1
        split = m
        for i in range(n):
            if dst_owner[i] >= 0:
                v6 = ip_version[i] == 6
                r = &src[i, 12]
                packet[m] = i
                owner[m] = dst_owner[i]
                direction[m] = DIRECTION_INGRESS
                is_v6[m] = v6
                remote_v4[m] = 0 if v6 else ((<uint32_t>r[0] << 24) | (<uint32_t>r[1] << 16)
                                             | (<uint32_t>r[2] << 8) | r[3])
                first_table[m] = plan[dst_owner[i], DIRECTION_INGRESS, v6, 0]
                m += 1
    return m, split
