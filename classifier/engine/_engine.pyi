import numpy as np

def address_hash(hi: int, lo: int, version: int) -> int: ...
def owners(
    addresses: np.ndarray,
    ip_version: np.ndarray,
    slot_hi: np.ndarray,
    slot_lo: np.ndarray,
    slot_version: np.ndarray,
    slot_owner: np.ndarray,
    out: np.ndarray,
) -> None: ...
def port_column(
    protocol: np.ndarray,
    l4: np.ndarray,
    dport: np.ndarray,
    icmp_type: np.ndarray,
    icmp_code: np.ndarray,
    out: np.ndarray,
) -> None: ...
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
) -> None: ...
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
) -> int: ...
def fold_tuples(
    map_key: np.ndarray,
    map_index: np.ndarray,
    keys: np.ndarray,
    counts: np.ndarray,
    size: int,
    in_keys: np.ndarray,
    in_counts: np.ndarray,
    new: np.ndarray,
) -> int: ...
def index_tuples(map_key: np.ndarray, map_index: np.ndarray, keys: np.ndarray) -> None: ...
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
) -> tuple[int, int]: ...
