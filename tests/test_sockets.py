"""Sockets files (exposure.md section 2): real ss / netstat listings of this machine, hand-written
Windows ones, their encodings, and every error case of the spec with the line it names.

The real listings (tests/data/sockets, README there: the commands and the listeners that were
running) come in two sets. The plain set's netstat and ss files list the same sockets, so the
parsers must agree on them; the `linklocal/` set adds what only ss can show (IPv6-only
wildcards, interfaces) and what netstat cuts without -W.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from classifier.analysis.sockets import ListeningSocket, parse_sockets
from classifier.errors import SocketsFileError

DATA = Path(__file__).parent / "data" / "sockets"

Row = tuple[int, str, str, int, tuple[int, ...], str | None, str | None]


def rows(name: str | Path, data: bytes | None = None) -> tuple[str, list[Row]]:
    path = DATA / name
    listing = parse_sockets(path.read_bytes() if data is None else data, str(name))
    return listing.format, [
        (s.line, s.protocol, str(s.address), s.port, s.families, s.interface, s.process)
        for s in listing.sockets
    ]


def sockets(name: str) -> list[ListeningSocket]:
    return list(parse_sockets((DATA / name).read_bytes(), name).sockets)


def key(socket: ListeningSocket) -> tuple[str, str, int, tuple[int, ...], bool]:
    return socket.protocol, str(socket.address), socket.port, socket.families, socket.loopback


# The listeners of tests/data/sockets/listeners.py (and listeners-nobody.py), as each tool
# shows them: (protocol, address, port, families, loopback)
PLAIN_SET = {
    ("tcp", "0.0.0.0", 18022, (4,), False),
    ("tcp", "::", 18022, (6,), False),  # IPV6_V6ONLY beside an IPv4 wildcard on the port
    ("tcp", "::", 18080, (4, 6), False),  # dual-stack
    ("tcp", "127.0.0.1", 18631, (4,), True),
    ("tcp", "::1", 18631, (6,), True),
    ("tcp", "192.0.2.2", 18432, (4,), False),
    ("tcp", "fd00::2", 18432, (6,), False),
    ("tcp", "0.0.0.0", 18900, (4,), False),
    ("udp", "0.0.0.0", 18068, (4,), False),
    ("udp", "::", 18546, (4, 6), False),
    ("udp", "127.0.0.53", 18053, (4,), True),
    ("udp", "::", 18901, (4, 6), False),
}


@pytest.mark.parametrize(
    "name",
    [
        "ss-tuln.txt",
        "ss-tulnp.txt",
        "ss-tulnap.txt",
        "ss-tuna.txt",
        "netstat-tuln.txt",
        "netstat-tulnp.txt",
        "netstat-tulnpW.txt",
        "netstat-tuan.txt",
        "netstat-tuanp.txt",
        "netstat-anW.txt",
        "netstat-tulnp-as-nobody.txt",
    ],
)
def test_real_listings_of_the_same_sockets_agree(name: str) -> None:
    found = sockets(name)
    assert {key(s) for s in found} == PLAIN_SET
    assert len(found) == len(PLAIN_SET)


def test_ss_with_processes_exactly() -> None:
    fmt, found = rows("ss-tulnp.txt")
    assert fmt == "ss"
    pid = 'users:(("python3",pid=13414,fd={}))'
    assert found == [
        (2, "udp", "127.0.0.53", 18053, (4,), None, pid.format(13)),
        (3, "udp", "0.0.0.0", 18068, (4,), None, pid.format(11)),
        (4, "udp", "::", 18546, (4, 6), None, pid.format(12)),
        (5, "udp", "::", 18901, (4, 6), None, 'users:(("python3",pid=13424,fd=4))'),
        (6, "tcp", "127.0.0.1", 18631, (4,), None, pid.format(6)),
        (7, "tcp", "192.0.2.2", 18432, (4,), None, pid.format(8)),
        (8, "tcp", "0.0.0.0", 18900, (4,), None, 'users:(("python3",pid=13424,fd=3))'),
        (9, "tcp", "0.0.0.0", 18022, (4,), None, pid.format(3)),
        (10, "tcp", "fd00::2", 18432, (6,), None, pid.format(9)),
        (11, "tcp", "::", 18022, (6,), None, pid.format(4)),
        (12, "tcp", "::", 18080, (4, 6), None, pid.format(5)),
        (13, "tcp", "::1", 18631, (6,), None, pid.format(7)),
    ]


def test_ss_without_processes_and_established_lines_skipped() -> None:
    assert all(r[6] is None for r in rows("ss-tuln.txt")[1])
    assert [r[0] for r in rows("ss-tuna.txt")[1]] == [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]


def test_netstat_with_programs_notes_and_dual_stack_inference() -> None:
    fmt, found = rows("netstat-tulnp-as-nobody.txt")
    assert fmt == "linux-netstat"
    assert found[0] == (5, "tcp", "127.0.0.1", 18631, (4,), None, None)  # "-": none
    assert (7, "tcp", "0.0.0.0", 18900, (4,), None, "13424/python3") in found
    assert (10, "tcp", "::", 18022, (6,), None, None) in found  # an IPv4 socket on 18022
    assert (11, "tcp", "::", 18080, (4, 6), None, None) in found
    assert found[-1] == (16, "udp", "::", 18901, (4, 6), None, "13424/python3")
    assert rows("netstat-tulnpW.txt")[1][0] == (
        3,
        "tcp",
        "127.0.0.1",
        18631,
        (4,),
        None,
        "13414/python3",
    )
    assert all(r[6] is None for r in rows("netstat-tuln.txt")[1])


def test_ss_shows_interfaces_mapped_and_v6only_sockets() -> None:
    fmt, found = rows("linklocal/ss-tulnap.txt")
    pid = 'users:(("python3",pid=12653,fd={}))'
    assert found == [
        (2, "udp", "0.0.0.0", 18053, (4,), None, pid.format(16)),
        (3, "udp", "127.0.0.1", 18055, (4,), None, pid.format(18)),
        (5, "udp", "::", 18054, (4, 6), None, pid.format(17)),
        (6, "udp", "::", 18056, (6,), None, pid.format(19)),
        (7, "udp", "fe80::fc:ff:fe00:1", 18057, (6,), "eth0", pid.format(20)),
        (8, "tcp", "127.0.0.1", 18081, (4,), None, pid.format(6)),
        (9, "tcp", "0.0.0.0", 18084, (4,), "lo", pid.format(9)),
        (10, "tcp", "0.0.0.0", 18080, (4,), None, pid.format(3)),
        (11, "tcp", "0.0.0.0", 18088, (4,), None, pid.format(14)),
        (12, "tcp", "192.0.2.2", 18085, (4,), None, pid.format(11)),
        (15, "tcp", "127.0.0.1", 18083, (4,), None, pid.format(8)),  # [::ffff:127.0.0.1]
        (16, "tcp", "fd00::2", 18086, (6,), None, pid.format(12)),
        (17, "tcp", "::", 18444, (6,), None, pid.format(5)),
        (18, "tcp", "::", 18443, (4, 6), None, pid.format(4)),
        (19, "tcp", "::", 18088, (6,), None, pid.format(15)),
        (20, "tcp", "fe80::fc:ff:fe00:1", 18087, (6,), "eth0", pid.format(13)),
        (21, "tcp", "::1", 18082, (6,), None, pid.format(7)),
    ]
    loopback = {s.port for s in sockets("linklocal/ss-tulnap.txt") if s.loopback}
    assert loopback == {18055, 18081, 18084, 18083, 18082}  # 18084: bound to lo


def test_netstat_cannot_see_v6only_and_reads_mapped_as_ipv4() -> None:
    found = {
        r[3]: r
        for r in rows("linklocal/netstat-tulnpW.txt")[1]
        if r[1] == "tcp" and r[2] != "0.0.0.0"
    }
    assert found[18444][4] == (4, 6)  # v6only, but netstat cannot show it: dual-stack (spec)
    assert found[18088][4] == (6,)  # an IPv4 socket shares the port: IPv6 only
    assert found[18083][2:5] == ("127.0.0.1", 18083, (4,))  # tcp6 shown as 127.0.0.1
    assert found[18087][2] == "fe80::fc:ff:fe00:1"


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("linklocal/netstat-tuln.txt", 13),
        ("linklocal/netstat-tulnp.txt", 13),
        ("linklocal/netstat-tuan.txt", 15),
        ("linklocal/netstat-an.txt", 15),
        ("linklocal/netstat-tulnp-as-nobody.txt", 14),
    ],
)
def test_netstat_without_w_cuts_long_addresses_an_error_at_that_line(name: str, line: int) -> None:
    with pytest.raises(SocketsFileError) as caught:
        sockets(name)
    assert str(caught.value).startswith(
        f"{name}:{line}: 'fe80::fc:ff:fe00:' in 'fe80::fc:ff:fe00::18087'"
    )
    assert "-W" in str(caught.value)


def test_windows_an_and_ano() -> None:
    fmt, found = rows("windows-an.txt")
    assert fmt == "windows-netstat"
    assert found[:4] == [
        (5, "tcp", "0.0.0.0", 135, (4,), None, None),
        (6, "tcp", "0.0.0.0", 445, (4,), None, None),
        (7, "tcp", "0.0.0.0", 3389, (4,), None, None),
        (8, "tcp", "10.0.1.10", 139, (4,), None, None),
    ]
    assert (12, "tcp", "::", 135, (6,), None, None) in found  # [::] is IPv6 only
    assert (21, "udp", "fe80::1c2b:3d4e:5f60:7182", 1900, (6,), "12", None) in found
    assert 18 not in [r[0] for r in found]  # UDP with a foreign address: a client
    assert [r[0] for r in found if r[1] == "tcp"] == [5, 6, 7, 8, 10, 12, 13, 14]
    fmt, found = rows("windows-ano.txt")
    assert found[0] == (5, "tcp", "0.0.0.0", 22, (4,), None, "4120")
    assert found[-1] == (16, "udp", "fe80::10", 546, (6,), "7", "1200")


def test_windows_utf16_with_bom_equals_the_utf8_file() -> None:
    assert rows("windows-ano-utf16.txt") == rows("windows-ano.txt")
    assert (DATA / "windows-ano-utf16.txt").read_bytes()[:2] == codecs.BOM_UTF16_LE


@pytest.mark.parametrize("name", ["ss-tulnp.txt", "netstat-tulnpW.txt", "windows-ano.txt"])
def test_encodings_and_line_ends(name: str) -> None:
    text = (DATA / name).read_bytes().decode("utf-8").replace("\r\n", "\n")
    expected = rows(name)
    for variant in (
        text.encode("utf-8"),
        text.replace("\n", "\r\n").encode("utf-8"),
        codecs.BOM_UTF8 + text.encode("utf-8"),
        codecs.BOM_UTF16_LE + text.replace("\n", "\r\n").encode("utf-16-le"),
        codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        ("\n\n" + text.replace("\n", "\n\n")).encode("utf-8"),  # blank lines anywhere
    ):
        fmt, found = rows(name, variant)
        assert fmt == expected[0]
        assert [r[1:] for r in found] == [r[1:] for r in expected[1]]


def test_netstat_sections_after_unix_sockets() -> None:
    text = (DATA / "netstat-anW.txt").read_text()
    more = (
        text
        + "Active Internet connections (w/o servers)\nProto Recv-Q Send-Q Local Address  Foreign "
        "Address  State\n"
        "tcp 0 0 0.0.0.0:9 0.0.0.0:* LISTEN\nActive Bluetooth connections\nnonsense line\n"
    )
    found = parse_sockets(more.encode(), "x").sockets
    assert [s.port for s in found][-1] == 9 and len(found) == len(PLAIN_SET) + 1


def test_ss_star_is_dual_stack_bracketed_wildcard_is_not() -> None:
    text = (
        "Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
        "tcp LISTEN 0 128 *:80 *:*\ntcp LISTEN 0 128 [::]:81 [::]:*\ntcp LISTEN 0 128 *%eth0:82 "
        "*:*\n"
        "udp UNCONN 0 0 [::ffff:10.0.0.5]:53 *:*\nudp ESTAB 0 0 10.0.0.5:5353 10.0.0.9:53\n"
    )
    found = parse_sockets(text.encode(), "x").sockets
    assert [(str(s.address), s.port, s.families, s.interface) for s in found] == [
        ("::", 80, (4, 6), None),
        ("::", 81, (6,), None),
        ("::", 82, (4, 6), "eth0"),
        ("10.0.0.5", 53, (4,), None),
    ]


SS_HEAD = "Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
NETSTAT_HEAD = (
    "Active Internet connections (only servers)\n"
    "Proto Recv-Q Send-Q Local Address Foreign Address State\n"
)
WINDOWS_HEAD = "\r\nActive Connections\r\n\r\n  Proto  Local Address  Foreign Address  State\r\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # format
        ("Proto Recv-Q Send-Q\n", 1, "not the output of netstat or ss"),
        ("\n\n  \nhello\n", 4, "not the output of netstat or ss"),
        ("", 1, "no netstat or ss output"),
        ("\n \n", 1, "no netstat or ss output"),
        (
            "(Not all processes could be identified, non-owned process info\n",
            1,
            "no netstat or ss output",
        ),
        ("A\x00c\x00t\x00i\x00v\x00e\x00\n", 1, "UTF-16 without a byte-order mark"),
        # linux-netstat
        (
            NETSTAT_HEAD + "tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN\nicmp 0 0 0.0.0.0:1 0.0.0.0:*\n",
            4,
            "unknown protocol 'icmp'",
        ),
        (NETSTAT_HEAD + "tcp 0 0 0.0.0.0:22\n", 3, "4 fields"),
        (NETSTAT_HEAD + "udp 0 x 0.0.0.0:53 0.0.0.0:*\n", 3, "Send-Q 'x' is not a number"),
        (
            NETSTAT_HEAD + "tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTENING\n",
            3,
            "unknown TCP state 'LISTENING'",
        ),
        (NETSTAT_HEAD + "tcp 0 0 0.0.0.0:22 0.0.0.0:*\n", 3, "needs a State"),
        (NETSTAT_HEAD + "tcp 0 0 0.0.0.0:ssh 0.0.0.0:* LISTEN\n", 3, "port 'ssh'"),
        (NETSTAT_HEAD + "udp 0 0 0.0.0.0:* 0.0.0.0:*\n", 3, "port '*'"),
        (NETSTAT_HEAD + "tcp 0 0 0.0.0.0:70000 0.0.0.0:* LISTEN\n", 3, "not a number 0..65535"),
        (
            NETSTAT_HEAD + "tcp 0 0 localhost:22 0.0.0.0:* LISTEN\n",
            3,
            "'localhost' in 'localhost:22' is not an IPv4 or IPv6",
        ),
        (NETSTAT_HEAD + "tcp 0 0 22 0.0.0.0:* LISTEN\n", 3, "is not ADDRESS:PORT"),
        (NETSTAT_HEAD + "\n" + "Proto Recv-Q\n", 4, "unknown protocol 'Proto'"),  # a second header
        # ss
        (SS_HEAD + "tcp LISTEN 0 128 0.0.0.0:22\n", 2, "5 fields"),
        (
            SS_HEAD + "tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\nicmp6 UNCONN 0 0 *:58 *:*\n",
            3,
            "unknown Netid 'icmp6'",
        ),
        (SS_HEAD + "tcp LISTEN 0 x 0.0.0.0:22 0.0.0.0:*\n", 2, "Send-Q 'x' is not a number"),
        (SS_HEAD + "tcp LISTEN 0 128 ::1:22 [::]:*\n", 2, "in brackets"),
        (SS_HEAD + "tcp LISTEN 0 128 [::1]x:22 [::]:*\n", 2, "is not [IPv6]%IFACE:PORT"),
        (SS_HEAD + "tcp LISTEN 0 128 [10.0.0.1]:22 [::]:*\n", 2, "not an IPv6 address"),
        (SS_HEAD + "tcp LISTEN 0 128 10.0.0.1%:22 0.0.0.0:*\n", 2, "empty interface"),
        (SS_HEAD + "udp UNCONN 0 0 0.0.0.0:domain 0.0.0.0:*\n", 2, "port 'domain'"),
        # windows-netstat
        (
            WINDOWS_HEAD + "  TCP 0.0.0.0:135 0.0.0.0:0 LISTENING\r\n  ICMP 0.0.0.0:0 *:*\r\n",
            6,
            "unknown protocol 'ICMP'",
        ),
        (WINDOWS_HEAD + "  TCP 0.0.0.0:135 0.0.0.0:0 LISTEN\r\n", 5, "unknown TCP state 'LISTEN'"),
        (
            WINDOWS_HEAD + "  TCP 0.0.0.0:135 0.0.0.0:0 LISTENING pid\r\n",
            5,
            "PID 'pid' is not a number",
        ),
        (WINDOWS_HEAD + "  UDP 0.0.0.0:500 *:* 12 13\r\n", 5, "5 fields"),
        (WINDOWS_HEAD + "  TCP 0.0.0.0:135 0.0.0.0:0\r\n", 5, "3 fields"),
        (WINDOWS_HEAD + "  TCP ::1:135 [::]:0 LISTENING\r\n", 5, "in brackets"),
        (WINDOWS_HEAD + "  UDP [fe80::1%]:1900 *:*\r\n", 5, "empty zone"),
        (WINDOWS_HEAD + "  TCP 0.0.0.0:* 0.0.0.0:0 LISTENING\r\n", 5, "port '*'"),
    ],
)
def test_damaged_files_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SocketsFileError) as caught:
        parse_sockets(text.encode("utf-8"), "listing.txt")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"listing.txt:{line}: ")
    assert message in str(caught.value)


def test_bad_encodings_name_the_line() -> None:
    data = (DATA / "ss-tuln.txt").read_bytes().replace(b"UNCONN", b"UNC\xffNN", 1)
    with pytest.raises(SocketsFileError, match=r"^x:2: not UTF-8 text"):
        parse_sockets(data, "x")
    utf16 = (
        codecs.BOM_UTF16_LE + "Netid State\nudp\n".encode("utf-16-le") + b"\x00\xd8"
    )  # lone surrogate
    with pytest.raises(SocketsFileError, match=r"^x:3: not UTF-16 text"):
        parse_sockets(utf16, "x")


def test_non_listening_lines_are_not_checked() -> None:
    """Only listening lines' addresses are read (netstat cuts the others' too)."""
    text = (
        NETSTAT_HEAD + "tcp 0 0 fe80::1:2:3:4:5:6:1234 fe80::1:2:3:4:5:6::443 ESTABLISHED\n"
        "udp 0 0 10.0.0.1:53 10.0.0.2:53 ESTABLISHED\nraw6 0 0 :::58 :::* 7\n"
    )
    assert parse_sockets(text.encode(), "x").sockets == ()
