"""Written seed inputs of the fuzz targets (edge cases no sample capture has).

`capture_seeds()`: hand-built pcap and pcapng files covering every native link type, both
byte orders and timestamp units, pcapng sections, interface blocks with options, simple and
obsolete packet blocks and custom blocks, ICMP errors, tags, tunnels and IPv6 extension
headers. `policy_seeds()`: small policy texts in both syntaxes with the shapes a fuzzer
should start from (nested and flat exports, every field, anchors, tags, numbers). The real
captures of ../shared/pcaps/dev and the bundled samples are read at run time by the runner
as further seed directories, never copied.
"""

from __future__ import annotations

import struct


def frames() -> list[tuple[int, bytes]]:
    """(link type, frame) pairs: one or two per native link type, with tags and ICMP errors."""
    mac = b"\x02" * 12
    ip4 = bytes.fromhex("45000028000140004006000a0a0000010a000002") + bytes.fromhex(
        "04d2005000000001000000005002ffff00000000"
    )
    ip6 = (
        bytes.fromhex("6000000000143a40")
        + b"\x20\x01\x0d\xb8"
        + b"\0" * 11
        + b"\x01"
        + b"\x20\x01\x0d\xb8"
        + b"\0" * 11
        + b"\x02"
        + bytes.fromhex("8000000000070001")
        + b"\0" * 12
    )
    quoted = bytes.fromhex("4500001c00010000401100000a0000020a0000090fa0003500080000")
    icmp_err = bytes.fromhex("4500003800010000400100000a0000010a0000020303000000000000") + quoted
    hbh_frag = (
        bytes.fromhex("6000000000180040")
        + b"\0" * 32
        + bytes.fromhex("2c000000000000001100000100000005")
        + bytes.fromhex("0001000200080000")
    )
    return [
        (1, mac + b"\x08\x00" + ip4),
        (1, mac + b"\x86\xdd" + ip6),
        (1, mac + b"\x88\xa8\x00\x01\x81\x00\x00\x02\x08\x00" + icmp_err),
        (1, mac + b"\x88\x47\x00\x01\x00\x40\x00\x02\x01\x40" + ip4),
        (1, mac + b"\x86\xdd" + hbh_frag),
        (113, b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 8 + b"\x08\x00" + ip4),
        (276, b"\x86\xdd\x00\x00" + b"\0\0\0\2\0\1\0\6" + b"\x02" * 8 + ip6),
        (101, ip4),
        (12, ip6),
        (14, icmp_err),
        (228, ip4),
        (229, hbh_frag),
        (0, struct.pack("<I", 2) + ip4),
        (0, struct.pack(">I", 30) + ip6),
        (108, struct.pack(">I", 24) + ip6),
        # PPP (framed, compressed protocol field), Cisco HDLC, PPPoE, LLC/SNAP, 802.11
        (9, b"\xff\x03\x00\x21" + ip4),
        (9, b"\x57" + ip6),
        (50, b"\x8f\x00\x08\x00" + icmp_err),
        (104, b"\x0f\x00\x86\xdd" + hbh_frag),
        (51, b"\x11\x00\x00\x07\x00\x2a\x00\x21" + ip4),
        (1, mac + b"\x88\x64\x11\x00\x00\x07\x00\x3e\x00\x57" + ip6),
        (1, mac + b"\x00\x30\xaa\xaa\x03\x00\x00\x00\x08\x00" + ip4),
        (
            105,
            b"\x88\x03" + b"\x02" * 26 + b"\x00\x00\x00\x00\xaa\xaa\x03\x00\x00\x00\x86\xdd" + ip6,
        ),
        (
            127,
            b"\x00\x00\x12\x00\x03\x00\x00\x00"
            + b"\x00" * 8
            + b"\x20\x00"
            + b"\x88\x00"
            + b"\x02" * 22
            + b"\x00\x00\x00\x00\xaa\xaa\x03\x00\x00\x00\x08\x00"
            + ip4,
        ),
    ]


def _pcap(records: list[tuple[int, bytes]], link: int, be: bool, nsec: bool) -> bytes:
    e = ">" if be else "<"
    out = struct.pack(e + "IHHiIII", 0xA1B23C4D if nsec else 0xA1B2C3D4, 2, 4, 0, 0, 96, link)
    for k, (_, frame) in enumerate(records):
        out += struct.pack(e + "IIII", k, k * 7, len(frame), len(frame) + k % 3) + frame
    return out


def _block(btype: int, body: bytes, e: str) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return (
        struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)
    )


def _pcapng(frames: list[tuple[int, bytes]], be: bool) -> bytes:
    e = ">" if be else "<"
    out = _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)
    links = sorted({link for link, _ in frames})
    for k, link in enumerate(links):
        opts = struct.pack(e + "HH", 9, 1) + bytes([9 if k % 2 else 0x8A]) + b"\0\0\0"
        opts += struct.pack(e + "HHq", 14, 8, k) + struct.pack(e + "HH", 0, 0)
        out += _block(1, struct.pack(e + "HHI", link, 0, 0 if k else 64) + opts, e)
    for k, (link, frame) in enumerate(frames):
        iface = links.index(link)
        kind = k % 4
        if kind == 0 and iface == 0:  # interface 0 has snaplen 64: the SPB holds that much
            out += _block(3, struct.pack(e + "I", len(frame)) + frame[:64], e)
        elif kind == 1:
            out += _block(
                2, struct.pack(e + "HHIIII", iface, 0, 0, k, len(frame), len(frame)) + frame, e
            )
        elif kind == 2:
            out += _block(0x40000BAD, b"custom", e)
            out += _block(
                6, struct.pack(e + "IIIII", iface, 1, k, len(frame), len(frame)) + frame, e
            )
        else:
            out += _block(
                6, struct.pack(e + "IIIII", iface, 1, k, len(frame), len(frame) + 4) + frame, e
            )
    return out


def two_sections() -> bytes:
    """A pcapng file of two sections (big-endian, then little-endian), interfaces in each."""
    pairs = frames()
    return _pcapng(pairs[:6], be=True) + _pcapng(pairs[6:], be=False)


def capture_seeds() -> list[bytes]:
    pairs = frames()
    out: list[bytes] = []
    by_link: dict[int, list[tuple[int, bytes]]] = {}
    for link, frame in pairs:
        by_link.setdefault(link, []).append((link, frame))
    for link, group in by_link.items():
        out.append(_pcap(group, link, be=link % 2 == 0, nsec=link > 100))
    out.append(_pcapng(pairs, be=False))
    out.append(two_sections())
    # damage at the edges: a cut header, a cut record, a block length below 12
    out.append(out[0][:20])
    out.append(out[0][: len(out[0]) - 3])
    out.append(out[-3][:28] + struct.pack("<II", 6, 8))
    return out


def policy_seeds() -> list[bytes]:
    rule = (
        "{direction: ingress, protocol: tcp, port_range_min: 80, port_range_max: 443, "
        "remote_ip_prefix: 0.0.0.0/0, priority: 10, action: allow, description: web}"
    )
    texts = [
        "security_groups:\n- id: sg-web\n  name: web\n  rules:\n  - " + rule + "\n"
        "  - {direction: egress, protocol: udp, multiport: '53,123', "
        "remote_address_group_id: ag-dns}\n"
        "  - {direction: ingress, protocol: icmp, icmp_type: echo, remote_group_id: sg-web}\n"
        "address_groups:\n- {id: ag-dns, ip_set: [10.0.0.2/32, '2001:db8::/32']}\n"
        "instances:\n- {id: web-1, addresses: [10.0.1.10], security_groups: [sg-web]}\n",
        '{"security_groups": [{"id": "sg-1"}], "security_group_rules": [{"security_group_id": '
        '"sg-1", "direction": "ingress", "protocol": 6, "port_range_min": 22, '
        '"port_range_max": 22, "remote_ip_prefix": "::/0", "ethertype": "IPv6"}]}',
        "base: &b {direction: ingress, protocol: tcp}\nsecurity_groups:\n- id: sg-1\n"
        "  rules:\n  - <<: *b\n    port_range_min: 1:30\n    port_range_max: 0x50\n",
        "security_groups: !!set {a, b}\ninstances: [{id: i, addresses: [.inf, 1e400]}]\n",
        "? [a, b]\n: 1\nsecurity_groups: []\n---\nx: 1\n",
    ]
    return [text.encode() for text in texts]
