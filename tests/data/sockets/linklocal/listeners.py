"""The listeners that were running when the linklocal/ set of listings was saved (as root)."""

import socket
import time

A4, A6 = socket.AF_INET, socket.AF_INET6
ETH0 = socket.if_nametoindex("eth0")
LINK_LOCAL = "fe80::fc:ff:fe00:1"
sockets = []


def bound(
    kind: int, family: int, address: object, v6only: int | None, device: str | None
) -> socket.socket:
    s = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    if device:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    s.bind(address)  # type: ignore[arg-type]
    sockets.append(s)
    return s


def tcp(
    family: int, address: object, v6only: int | None = None, device: str | None = None
) -> socket.socket:
    s = bound(socket.SOCK_STREAM, family, address, v6only, device)
    s.listen(5)
    return s


def udp(family: int, address: object, v6only: int | None = None) -> socket.socket:
    return bound(socket.SOCK_DGRAM, family, address, v6only, None)


tcp(A4, ("0.0.0.0", 18080))
tcp(A6, ("::", 18443), v6only=0)
tcp(A6, ("::", 18444), v6only=1)
loopback = tcp(A4, ("127.0.0.1", 18081))
tcp(A6, ("::1", 18082))
tcp(A6, ("::ffff:127.0.0.1", 18083), v6only=0)
tcp(A4, ("0.0.0.0", 18084), device="lo")
tcp(A4, ("192.0.2.2", 18085))
tcp(A6, ("fd00::2", 18086))
tcp(A6, (LINK_LOCAL, 18087, 0, ETH0))
tcp(A4, ("0.0.0.0", 18088))  # beside an IPv6-only wildcard on the same port
tcp(A6, ("::", 18088), v6only=1)
udp(A4, ("0.0.0.0", 18053))
udp(A6, ("::", 18054), v6only=0)
udp(A4, ("127.0.0.1", 18055))
udp(A6, ("::", 18056), v6only=1)
udp(A6, (LINK_LOCAL, 18057, 0, ETH0))
client = udp(A4, ("127.0.0.1", 18058))
client.connect(("127.0.0.1", 18055))  # a connected UDP socket
connection = socket.create_connection(("127.0.0.1", 18081))  # an established TCP connection
sockets += [connection, loopback.accept()[0]]
print("ready", flush=True)
time.sleep(120)
