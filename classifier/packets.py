"""The packet batch: the one contract between the reader, the engine and connection tracking.

A `PacketBatch` holds decoded headers of consecutive capture records as numpy columns, one
element per record (every record of the file, whatever its status: nothing is dropped).
The reader fills the columns; the engine and connection tracking only read them.

Addresses are 16-byte big-endian columns of shape (n, 16), uint8: IPv6 as is, IPv4 mapped
(`::ffff:a.b.c.d`, so the IPv4 address is bytes 12..15). `ip_version` says which family.

The codes in `status`, `malformed_reason`, `l4` and `fragment` are those of
`classifier.codes`. Fields that do not apply or are not known hold 0, and a bit in `l4` says
whether they are known. For example a non-first fragment has status OK, protocol set, and no
L4_PORTS bit.

`Packet` is the same record as a plain Python object, for the reference matcher and tests:
`batch.packet(i)` converts one row.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.codes import (
    FRAGMENT_LATER,
    FRAGMENT_NONE,
    L4_ICMP,
    L4_ICMP_ID,
    L4_ICMP_NO_CODE,
    L4_INNER,
    L4_INNER_ICMP_ID,
    L4_INNER_PORTS,
    L4_PORTS,
    L4_TCP_FLAGS,
    MALFORMED_NONE,
    STATUS_L4_TRUNCATED,
    STATUS_OK,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# name -> (dtype, per-row shape). The order is the column order of a batch.
COLUMNS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "index": (np.int64, ()),  # record index in its file, 0-based
    "ts_ns": (np.int64, ()),  # timestamp, nanoseconds since the epoch
    "wire_len": (np.uint32, ()),  # original length on the wire
    "cap_len": (np.uint32, ()),  # captured length
    "status": (np.uint8, ()),  # codes.STATUS_*
    "malformed_reason": (np.uint8, ()),  # codes.MALFORMED_*
    "ip_version": (np.uint8, ()),  # 4, 6, or 0 when not read
    "src": (np.uint8, (16,)),  # outermost IP source, 16 bytes (IPv4 mapped)
    "dst": (np.uint8, (16,)),  # outermost IP destination
    "protocol": (np.uint8, ()),  # upper-layer protocol (after IPv6 extension headers)
    "l4": (np.uint8, ()),  # codes.L4_* bits: which of the following are known
    "sport": (np.uint16, ()),
    "dport": (np.uint16, ()),
    "icmp_type": (np.uint8, ()),
    "icmp_code": (np.uint8, ()),
    "icmp_id": (np.uint16, ()),
    "tcp_flags": (np.uint8, ()),
    "fragment": (np.uint8, ()),  # codes.FRAGMENT_*
    "ip_id": (np.uint32, ()),  # IPv4 identification or IPv6 fragment identification
    "frag_offset": (np.uint16, ()),  # fragment offset in 8-byte units
    # the protocol naming the datagram in fragment keys: IPv4 the protocol field, IPv6 the
    # fragment header's Next Header (the same in every fragment), else the upper layer
    "frag_next_header": (np.uint8, ()),
    "inner_protocol": (np.uint8, ()),  # ICMP errors: the quoted header (see L4_INNER*)
    "inner_src": (np.uint8, (16,)),
    "inner_dst": (np.uint8, (16,)),
    "inner_sport": (np.uint16, ()),
    "inner_dport": (np.uint16, ()),
    "inner_icmp_type": (np.uint8, ()),
    "inner_icmp_id": (np.uint16, ()),
}


class PacketBatch:
    """Columns of `len(batch)` consecutive records; every column is a C-contiguous array."""

    __slots__ = tuple(COLUMNS)

    index: np.ndarray
    ts_ns: np.ndarray
    wire_len: np.ndarray
    cap_len: np.ndarray
    status: np.ndarray
    malformed_reason: np.ndarray
    ip_version: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    protocol: np.ndarray
    l4: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    icmp_type: np.ndarray
    icmp_code: np.ndarray
    icmp_id: np.ndarray
    tcp_flags: np.ndarray
    fragment: np.ndarray
    ip_id: np.ndarray
    frag_offset: np.ndarray
    frag_next_header: np.ndarray
    inner_protocol: np.ndarray
    inner_src: np.ndarray
    inner_dst: np.ndarray
    inner_sport: np.ndarray
    inner_dport: np.ndarray
    inner_icmp_type: np.ndarray
    inner_icmp_id: np.ndarray

    def __init__(self, **columns: np.ndarray):
        for name in COLUMNS:
            setattr(self, name, columns[name])

    @classmethod
    def zeros(cls, n: int) -> PacketBatch:
        return cls(
            **{name: np.zeros((n, *shape), dtype) for name, (dtype, shape) in COLUMNS.items()}
        )

    def __len__(self) -> int:
        return len(self.index)

    def slice(self, start: int, stop: int) -> PacketBatch:
        """A view of rows start..stop (no copy)."""
        return PacketBatch(**{name: getattr(self, name)[start:stop] for name in COLUMNS})

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in COLUMNS}

    @classmethod
    def concatenate(cls, batches: list[PacketBatch]) -> PacketBatch:
        if not batches:
            return cls.zeros(0)
        return cls(
            **{name: np.concatenate([getattr(b, name) for b in batches]) for name in COLUMNS}
        )

    @classmethod
    def from_packets(cls, packets: list[Packet]) -> PacketBatch:
        """Build a batch from Python records (tests, scripts)."""
        batch = cls.zeros(len(packets))
        for i, p in enumerate(packets):
            p.store(batch, i)
        return batch

    def packet(self, i: int) -> Packet:
        return Packet.load(self, i)

    def __iter__(self) -> Iterator[Packet]:
        for i in range(len(self)):
            yield self.packet(i)


def address_to_bytes(address: IPAddress) -> bytes:
    """16-byte column form: IPv6 as is, IPv4 mapped into ::ffff:0:0/96."""
    if address.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + address.packed
    return address.packed


def bytes_to_address(raw: bytes | np.ndarray, version: int) -> IPAddress:
    data = bytes(raw)
    return ipaddress.IPv4Address(data[12:16]) if version == 4 else ipaddress.IPv6Address(data)


@dataclass(frozen=True)
class QuotedHeader:
    """The IP header (and the start of its transport header) quoted by an ICMP error."""

    protocol: int
    src: IPAddress
    dst: IPAddress
    sport: int | None = None  # TCP/UDP/SCTP ports, when quoted
    dport: int | None = None
    icmp_type: int | None = None  # a quoted ICMP query: its type and identifier
    icmp_id: int | None = None


@dataclass(frozen=True)
class Packet:
    """One record as a Python object. `None` means unknown or not applicable."""

    ts_ns: int = 0
    ip_version: int = 4  # 4 or 6 (0 for not-ip / malformed records)
    src: IPAddress | None = None
    dst: IPAddress | None = None
    protocol: int = 0
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    tcp_flags: int | None = None
    fragment: int = FRAGMENT_NONE
    ip_id: int = 0
    frag_offset: int = 0
    # the protocol of the datagram in fragment keys (batch column of that name); None means
    # the same as `protocol` (no IPv6 extension header follows the fragment header)
    frag_next_header: int | None = None
    quoted: QuotedHeader | None = None
    status: int = STATUS_OK
    malformed_reason: int = MALFORMED_NONE
    wire_len: int = 0
    cap_len: int = 0
    index: int = 0

    def __post_init__(self) -> None:
        if self.frag_next_header is None:
            object.__setattr__(self, "frag_next_header", self.protocol)

    @property
    def ports_known(self) -> bool:
        return self.dport is not None

    def store(self, batch: PacketBatch, i: int) -> None:
        batch.index[i] = self.index
        batch.ts_ns[i] = self.ts_ns
        batch.wire_len[i] = self.wire_len
        batch.cap_len[i] = self.cap_len
        batch.status[i] = self.status
        batch.malformed_reason[i] = self.malformed_reason
        batch.ip_version[i] = self.ip_version
        if self.src is not None:
            batch.src[i] = np.frombuffer(address_to_bytes(self.src), np.uint8)
        if self.dst is not None:
            batch.dst[i] = np.frombuffer(address_to_bytes(self.dst), np.uint8)
        batch.protocol[i] = self.protocol
        l4 = 0
        if self.sport is not None and self.dport is not None:
            batch.sport[i], batch.dport[i] = self.sport, self.dport
            l4 |= L4_PORTS
        if self.icmp_type is not None:
            batch.icmp_type[i] = self.icmp_type
            l4 |= L4_ICMP
            if self.icmp_code is not None:
                batch.icmp_code[i] = self.icmp_code
            else:
                l4 |= L4_ICMP_NO_CODE
        if self.icmp_id is not None:
            batch.icmp_id[i] = self.icmp_id
            l4 |= L4_ICMP_ID
        if self.tcp_flags is not None:
            batch.tcp_flags[i] = self.tcp_flags
            l4 |= L4_TCP_FLAGS
        q = self.quoted
        if q is not None:
            l4 |= L4_INNER
            batch.inner_protocol[i] = q.protocol
            batch.inner_src[i] = np.frombuffer(address_to_bytes(q.src), np.uint8)
            batch.inner_dst[i] = np.frombuffer(address_to_bytes(q.dst), np.uint8)
            if q.sport is not None and q.dport is not None:
                batch.inner_sport[i], batch.inner_dport[i] = q.sport, q.dport
                l4 |= L4_INNER_PORTS
            if q.icmp_id is not None:
                batch.inner_icmp_type[i] = q.icmp_type or 0
                batch.inner_icmp_id[i] = q.icmp_id
                l4 |= L4_INNER_ICMP_ID
        batch.l4[i] = l4
        batch.fragment[i] = self.fragment
        batch.ip_id[i] = self.ip_id
        batch.frag_offset[i] = self.frag_offset
        batch.frag_next_header[i] = (
            self.protocol if self.frag_next_header is None else self.frag_next_header
        )

    @classmethod
    def load(cls, batch: PacketBatch, i: int) -> Packet:
        l4 = int(batch.l4[i])
        version = int(batch.ip_version[i])
        has_ip = version in (4, 6) and int(batch.status[i]) in (STATUS_OK, STATUS_L4_TRUNCATED)
        quoted = None
        if l4 & L4_INNER:
            quoted = QuotedHeader(
                protocol=int(batch.inner_protocol[i]),
                src=bytes_to_address(batch.inner_src[i], version),
                dst=bytes_to_address(batch.inner_dst[i], version),
                sport=int(batch.inner_sport[i]) if l4 & L4_INNER_PORTS else None,
                dport=int(batch.inner_dport[i]) if l4 & L4_INNER_PORTS else None,
                icmp_type=int(batch.inner_icmp_type[i]) if l4 & L4_INNER_ICMP_ID else None,
                icmp_id=int(batch.inner_icmp_id[i]) if l4 & L4_INNER_ICMP_ID else None,
            )
        return cls(
            ts_ns=int(batch.ts_ns[i]),
            ip_version=version,
            src=bytes_to_address(batch.src[i], version) if has_ip else None,
            dst=bytes_to_address(batch.dst[i], version) if has_ip else None,
            protocol=int(batch.protocol[i]),
            sport=int(batch.sport[i]) if l4 & L4_PORTS else None,
            dport=int(batch.dport[i]) if l4 & L4_PORTS else None,
            icmp_type=int(batch.icmp_type[i]) if l4 & L4_ICMP else None,
            icmp_code=int(batch.icmp_code[i])
            if l4 & L4_ICMP and not l4 & L4_ICMP_NO_CODE
            else None,
            icmp_id=int(batch.icmp_id[i]) if l4 & L4_ICMP_ID else None,
            tcp_flags=int(batch.tcp_flags[i]) if l4 & L4_TCP_FLAGS else None,
            fragment=int(batch.fragment[i]),
            ip_id=int(batch.ip_id[i]),
            frag_offset=int(batch.frag_offset[i]),
            frag_next_header=int(batch.frag_next_header[i]),
            quoted=quoted,
            status=int(batch.status[i]),
            malformed_reason=int(batch.malformed_reason[i]),
            wire_len=int(batch.wire_len[i]),
            cap_len=int(batch.cap_len[i]),
            index=int(batch.index[i]),
        )


# --- the record's own fields, as reported (section 6) ------------------------------------------


def has_ip(batch: PacketBatch) -> np.ndarray:
    """Rows whose outermost IP header was read (the others are not-ip or malformed)."""
    ip: np.ndarray = (batch.status == STATUS_OK) | (batch.status == STATUS_L4_TRUNCATED)
    return ip


def own_fields(batch: PacketBatch) -> dict[str, np.ndarray]:
    """`ip_version`, `protocol`, `sport`, `dport`, `icmp_type` and `icmp_code` as the record
    itself carries them: int64 columns, -1 where the field is empty (semantics section 6).

    Fragment joining (connection tracking) writes a first fragment's ports, ICMP fields and
    upper-layer protocol into its later fragments; what is reported is the record's own: a
    non-first fragment has no ports or ICMP fields, and its protocol is the one it shows (the
    fragment header's Next Header, `frag_next_header`), joined or not. So the columns are the
    same before and after joining, in stateful and stateless runs alike.
    """
    ip = has_ip(batch)
    own = ip & (batch.fragment != FRAGMENT_LATER)
    l4 = batch.l4
    ports = own & ((l4 & L4_PORTS) != 0)
    icmp = own & ((l4 & L4_ICMP) != 0)
    code = icmp & ((l4 & L4_ICMP_NO_CODE) == 0)
    protocol = np.where(own, batch.protocol, batch.frag_next_header)
    empty = np.int64(-1)
    return {
        "ip_version": np.where(ip, batch.ip_version.astype(np.int64), empty),
        "protocol": np.where(ip, protocol.astype(np.int64), empty),
        "sport": np.where(ports, batch.sport.astype(np.int64), empty),
        "dport": np.where(ports, batch.dport.astype(np.int64), empty),
        "icmp_type": np.where(icmp, batch.icmp_type.astype(np.int64), empty),
        "icmp_code": np.where(code, batch.icmp_code.astype(np.int64), empty),
    }


def address_labels(
    column: np.ndarray, version: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A 16-byte address column as text, dictionary-encoded: `(codes, labels)` with row i's
    text `labels[codes[i]]` (dotted decimal for IPv4, RFC 5952 for IPv6) and `labels[0]` the
    empty text of rows not `known`. Each distinct address is formatted once (np.unique), since
    a capture holds few distinct addresses and many packets."""
    codes = np.zeros(len(column), np.int64)
    labels: list[str] = [""]
    keys = np.ascontiguousarray(column).view(np.dtype((np.void, 16))).ravel()
    for v in (4, 6):
        sel = known & (version == v)
        if not sel.any():
            continue
        uniq, inverse = np.unique(keys[sel], return_inverse=True)
        codes[sel] = inverse.ravel() + len(labels)
        if v == 4:
            labels += [str(ipaddress.IPv4Address(bytes(u)[12:])) for u in uniq]
        else:
            labels += [str(ipaddress.IPv6Address(bytes(u))) for u in uniq]
    return codes, np.array(labels, dtype=object)
