"""Sockets files (exposure.md section 2): the listening sockets in saved netstat / ss output.

`parse_sockets(data, name)` reads the bytes of a saved listing of Linux net-tools `netstat -n`
(`-a -l -t -u -p -W`), iproute2 `ss -n -t -u` (`-l -a -p`) or Windows `netstat -an` / `-ano`,
as UTF-8 (a byte-order mark ignored) or UTF-16 with a byte-order mark, LF or CRLF, and returns
its listening TCP/UDP sockets in file order, each with the families it takes (dual-stack
sockets take both). Anything that does not read is a `SocketsFileError` naming the file and the
1-based line: `FILE:N: message`. Only listening lines' addresses are checked (netstat cuts long
addresses of other lines).

Readings the spec leaves to us (docs/exposure.md): tabs are not field separators (the tools
print spaces only); a netstat `tcp` (IPv4) line never makes a dual-stack socket, only
`tcp6`/`udp6` `:::PORT` lines can; `%` (a zone) is read only where the format has one
(ss `%IFACE`, Windows `[addr%zone]`).
"""

from __future__ import annotations

import codecs
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from classifier.errors import SocketsFileError
from classifier.policy import IPAddress

Format = Literal["linux-netstat", "ss", "windows-netstat"]
Protocol = Literal["tcp", "udp"]

NETSTAT_PROTOCOLS = frozenset(
    {"tcp", "tcp6", "udp", "udp6", "udpl", "udpl6", "raw", "raw6", "sctp", "sctp6"}
)
NETSTAT_TCP_STATES = frozenset(
    {
        "LISTEN",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "CLOSING",
    }
)
NETSTAT_UDP_STATES = frozenset({"ESTABLISHED", "UNKNOWN"})  # an unconnected socket: empty
NETSTAT_NOTES = (
    "(Not all processes could be identified",
    " will not be shown, you would have to be root",
    "(No info could be read for",
)
SS_NETIDS = frozenset(
    {
        "tcp",
        "udp",
        "raw",
        "sctp",
        "mptcp",
        "u_str",
        "u_dgr",
        "u_seq",
        "nl",
        "p_raw",
        "p_dgr",
        "tipc",
        "v_str",
        "v_dgr",
        "xdp",
    }
)
WINDOWS_TCP_STATES = frozenset(
    {
        "LISTENING",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECEIVED",
        "FIN_WAIT_1",
        "FIN_WAIT_2",
        "CLOSE_WAIT",
        "CLOSING",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSED",
        "BOUND",
    }
)
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ListeningSocket:
    """One listening socket of the file."""

    line: int  # 1-based line in the file
    protocol: Protocol
    address: IPAddress  # normalised: IPv4-mapped as IPv4, ss `*` as `::`
    port: int
    families: tuple[int, ...]  # (4,), (6,) or (4, 6) for a dual-stack socket
    interface: str | None = None  # ss `%IFACE`, Windows' zone index
    process: str | None = None  # the program column as printed, None when absent

    @property
    def dual_stack(self) -> bool:
        return len(self.families) == 2

    @property
    def loopback(self) -> bool:
        return self.address.is_loopback or self.interface == "lo"

    @property
    def wildcard(self) -> bool:
        return int(self.address) == 0


@dataclass(frozen=True)
class SocketListing:
    format: Format
    sockets: tuple[ListeningSocket, ...]


def _fields(line: str) -> list[str]:
    return [part for part in line.split(" ") if part]


def _rest(line: str, count: int) -> str:
    """The text of `line` after its first `count` fields, trailing spaces removed."""
    position = 0
    for _ in range(count):
        while position < len(line) and line[position] == " ":
            position += 1
        while position < len(line) and line[position] != " ":
            position += 1
    return line[position:].strip(" ")


def decode(data: bytes, name: str) -> list[str]:
    """The file's lines (CR of CRLF removed), from UTF-8 or BOM-marked UTF-16 bytes."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec, body = "utf-16", data
    else:
        codec, body = "utf-8", data[3:] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as error:
        before = body[: error.start].decode(codec, errors="replace")
        what = "UTF-16 text" if codec == "utf-16" else "UTF-8 text"
        raise SocketsFileError(
            name,
            before.count("\n") + 1,
            f"not {what} (save the listing as UTF-8, or UTF-16 with a byte-order mark)",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _is_note(line: str) -> bool:
    return line.startswith(NETSTAT_NOTES)


def parse_sockets(data: bytes, name: str) -> SocketListing:
    """The listening sockets of a saved netstat / ss listing (see the module docstring)."""
    lines = decode(data, name)
    for number, line in enumerate(lines, 1):
        if not line.strip() or _is_note(line):
            continue
        words = _fields(line)
        if line.startswith("Active Internet connections"):
            return SocketListing("linux-netstat", _Netstat(name, lines, number).parse())
        if words[:2] == ["Netid", "State"]:
            return SocketListing("ss", _Ss(name, lines, number).parse())
        if line.strip(" ").startswith("Active Connections"):
            return SocketListing("windows-netstat", _Windows(name, lines, number).parse())
        hint = ""
        if "\x00" in line:
            hint = " (NUL characters: UTF-16 without a byte-order mark?)"
        raise SocketsFileError(name, number, f"not the output of netstat or ss{hint}")
    raise SocketsFileError(name, 1, "no netstat or ss output in the file (empty)")


class _Reader:
    """Shared by the three formats: errors, ports and addresses."""

    def __init__(self, name: str, lines: list[str], start: int):
        self.name = name
        self.lines = lines
        self.start = start  # the 1-based number of the line that decided the format

    def fail(self, number: int, message: str) -> SocketsFileError:
        return SocketsFileError(self.name, number, message)

    def numbers(self, number: int, fields: list[str], what: tuple[str, ...]) -> None:
        for text, label in zip(fields, what, strict=True):
            if not _DIGITS.fullmatch(text):
                raise self.fail(number, f"{label} {text!r} is not a number")

    def split_port(self, number: int, text: str) -> tuple[str, int]:
        """`ADDR:PORT` at the last colon; the port decimal 0..65535."""
        head, colon, port = text.rpartition(":")
        if not colon or not head:
            raise self.fail(number, f"local address {text!r} is not ADDRESS:PORT")
        if not _DIGITS.fullmatch(port) or len(port) > 5 or int(port) > 65535:
            hint = " (a service name: save the output of the -n option)" if port.isalpha() else ""
            raise self.fail(number, f"port {port!r} of {text!r} is not a number 0..65535{hint}")
        return head, int(port)

    def address(self, number: int, text: str, whole: str) -> IPAddress:
        """An IPv4 or IPv6 address without zone; IPv4-mapped IPv6 read as IPv4."""
        try:
            if "%" in text or not text.isascii():
                raise ValueError
            address = ipaddress.ip_address(text)
        except ValueError:
            raise self.fail(
                number, f"{text!r} in {whole!r} is not an IPv4 or IPv6 address"
            ) from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return address


class _Netstat(_Reader):
    """Linux net-tools netstat."""

    def parse(self) -> tuple[ListeningSocket, ...]:
        found: list[tuple[ListeningSocket, bool]] = []  # (socket, a tcp6/udp6 wildcard)
        internet = True
        header_next = True
        for number in range(self.start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if not line.strip() or _is_note(line):
                continue
            if line.startswith("Active "):
                internet = line.startswith("Active Internet connections")
                header_next = True
                continue
            if not internet:
                continue  # UNIX domain sockets, Bluetooth, ...: up to the next Internet heading
            fields = _fields(line)
            if header_next and fields[0] == "Proto":
                header_next = False
                continue
            header_next = False
            socket = self.socket_line(number, line, fields)
            if socket is not None:
                found.append(socket)
        return self.dual_stack(found)

    def socket_line(
        self, number: int, line: str, fields: list[str]
    ) -> tuple[ListeningSocket, bool] | None:
        proto = fields[0]
        if proto not in NETSTAT_PROTOCOLS:
            raise self.fail(
                number,
                f"unknown protocol {proto!r}: expected one of "
                + ", ".join(sorted(NETSTAT_PROTOCOLS)),
            )
        if len(fields) < 5:
            raise self.fail(
                number,
                f"{len(fields)} fields: a socket line is Proto Recv-Q Send-Q "
                "Local-Address Foreign-Address [State] [Program]",
            )
        self.numbers(number, fields[1:3], ("Recv-Q", "Send-Q"))
        local, foreign = fields[3], fields[4]
        protocol: Protocol
        if proto in ("tcp", "tcp6"):
            if len(fields) < 6:
                raise self.fail(number, "a tcp line needs a State after the foreign address")
            if fields[5] not in NETSTAT_TCP_STATES:
                raise self.fail(
                    number,
                    f"unknown TCP state {fields[5]!r}: expected one of "
                    + ", ".join(sorted(NETSTAT_TCP_STATES)),
                )
            if fields[5] != "LISTEN":
                return None
            protocol, program = "tcp", _rest(line, 6)
        elif proto in ("udp", "udp6"):
            if len(fields) > 5 and fields[5] in NETSTAT_UDP_STATES:
                return None  # a connected (client) socket
            if not foreign.endswith(":*"):
                return None
            protocol, program = "udp", _rest(line, 5)
        else:
            return None  # UDP-Lite, raw and SCTP sockets are never listening sockets here
        head, port = self.split_port(number, local)
        try:
            address = self.address(number, head, local)
        except SocketsFileError as error:
            raise self.fail(
                number,
                f"{error.message} (netstat cuts addresses longer than the "
                "column unless -W is given: save the output of netstat -W)",
            ) from None
        if address.version == 6 and proto.endswith("6") and int(address) == 0:
            families: tuple[int, ...] = (4, 6)
        else:
            families = (address.version,)
        socket = ListeningSocket(
            number,
            protocol,
            address,
            port,
            families,
            None,
            None if program in ("", "-") else program,
        )
        return socket, families == (4, 6)

    @staticmethod
    def dual_stack(found: list[tuple[ListeningSocket, bool]]) -> tuple[ListeningSocket, ...]:
        """A tcp6/udp6 `:::PORT` socket is dual-stack unless an IPv4-only listening socket of
        the same protocol and port is in the file: Linux could not have bound it beside one."""
        ipv4_only = {(s.protocol, s.port) for s, _ in found if s.families == (4,)}
        result = []
        for socket, wildcard6 in found:
            if wildcard6 and (socket.protocol, socket.port) in ipv4_only:
                socket = ListeningSocket(
                    socket.line,
                    socket.protocol,
                    socket.address,
                    socket.port,
                    (6,),
                    socket.interface,
                    socket.process,
                )
            result.append(socket)
        return tuple(result)


class _Ss(_Reader):
    """iproute2 ss."""

    def parse(self) -> tuple[ListeningSocket, ...]:
        found: list[ListeningSocket] = []
        for number in range(self.start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if not line.strip():
                continue
            fields = _fields(line)
            if len(fields) < 6:
                raise self.fail(
                    number,
                    f"{len(fields)} fields: a socket line is Netid State "
                    "Recv-Q Send-Q Local-Address:Port Peer-Address:Port [Process]",
                )
            netid, state = fields[0], fields[1]
            if netid not in SS_NETIDS:
                raise self.fail(
                    number,
                    f"unknown Netid {netid!r}: expected one of " + ", ".join(sorted(SS_NETIDS)),
                )
            self.numbers(number, fields[2:4], ("Recv-Q", "Send-Q"))
            if netid == "tcp" and state == "LISTEN":
                protocol: Protocol = "tcp"
            elif netid == "udp" and state == "UNCONN":
                protocol = "udp"
            else:
                continue
            found.append(self.local(number, protocol, fields[4], _rest(line, 6) or None))
        return tuple(found)

    def local(
        self, number: int, protocol: Protocol, text: str, process: str | None
    ) -> ListeningSocket:
        head, port = self.split_port(number, text)
        interface: str | None = None
        if head.startswith("["):
            inner, bracket, after = head[1:].partition("]")
            if not bracket or (after and not after.startswith("%")):
                raise self.fail(number, f"{text!r} is not [IPv6]%IFACE:PORT")
            if after:
                interface = after[1:]
            if ":" not in inner:
                raise self.fail(number, f"{inner!r} in {text!r} is not an IPv6 address")
            address = self.address(number, inner, text)
        else:
            if "%" in head:
                head, _, interface = head.partition("%")
            if head == "*":
                address = ipaddress.IPv6Address(0)
            elif ":" in head:
                raise self.fail(number, f"{text!r}: ss writes IPv6 addresses in brackets")
            else:
                address = self.address(number, head, text)
        if interface == "":
            raise self.fail(number, f"{text!r}: an empty interface name after '%'")
        families = (4, 6) if head == "*" else (address.version,)
        return ListeningSocket(number, protocol, address, port, families, interface, process)


class _Windows(_Reader):
    """Windows netstat -an / -ano."""

    def parse(self) -> tuple[ListeningSocket, ...]:
        found: list[ListeningSocket] = []
        header_next = True
        for number in range(self.start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if not line.strip():
                continue
            fields = _fields(line)
            if line.strip(" ").startswith("Active Connections"):
                header_next = True
                continue
            if header_next and fields[0] == "Proto":
                header_next = False
                continue
            header_next = False
            proto = fields[0]
            if proto == "TCP":
                expected = 4
            elif proto == "UDP":
                expected = 3
            else:
                raise self.fail(number, f"unknown protocol {proto!r}: expected TCP or UDP")
            if not expected <= len(fields) <= expected + 1:
                shape = (
                    "TCP Local Foreign State [PID]" if proto == "TCP" else "UDP Local Foreign [PID]"
                )
                raise self.fail(number, f"{len(fields)} fields: a socket line is {shape}")
            if proto == "TCP" and fields[3] not in WINDOWS_TCP_STATES:
                raise self.fail(
                    number,
                    f"unknown TCP state {fields[3]!r}: expected one of "
                    + ", ".join(sorted(WINDOWS_TCP_STATES)),
                )
            pid = fields[expected] if len(fields) > expected else None
            if pid is not None and not _DIGITS.fullmatch(pid):
                raise self.fail(number, f"PID {pid!r} is not a number")
            listening = fields[3] == "LISTENING" if proto == "TCP" else fields[2] == "*:*"
            if listening:
                found.append(self.local(number, "tcp" if proto == "TCP" else "udp", fields[1], pid))
        return tuple(found)

    def local(self, number: int, protocol: Protocol, text: str, pid: str | None) -> ListeningSocket:
        head, port = self.split_port(number, text)
        interface: str | None = None
        if head.startswith("[") and head.endswith("]"):
            inner = head[1:-1]
            if "%" in inner:
                inner, _, interface = inner.partition("%")
                if not interface:
                    raise self.fail(number, f"{text!r}: an empty zone after '%'")
            if ":" not in inner:
                raise self.fail(number, f"{inner!r} in {text!r} is not an IPv6 address")
            address = self.address(number, inner, text)
        elif ":" in head:
            raise self.fail(number, f"{text!r}: Windows writes IPv6 addresses in brackets")
        else:
            address = self.address(number, head, text)
        return ListeningSocket(number, protocol, address, port, (address.version,), interface, pid)
