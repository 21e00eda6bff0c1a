"""The listeners that were running when the plain set of listings was saved (as root).

Run `python3 listeners.py` (and `listeners-nobody.py` as user nobody), then the commands of
README.md; the sockets stay open for two minutes.
"""

import socket
import time

A4, A6 = socket.AF_INET, socket.AF_INET6
sockets: list[socket.socket] = []


def tcp(family: int, address: str, port: int, v6only: int | None = None) -> None:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((address, port))
    s.listen(5)
    sockets.append(s)


def udp(family: int, address: str, port: int, v6only: int | None = None) -> None:
    s = socket.socket(family, socket.SOCK_DGRAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((address, port))
    sockets.append(s)


tcp(A4, "0.0.0.0", 18022)
tcp(A6, "::", 18022, v6only=1)
tcp(A6, "::", 18080, v6only=0)
tcp(A4, "127.0.0.1", 18631)
tcp(A6, "::1", 18631)
tcp(A4, "192.0.2.2", 18432)
tcp(A6, "fd00::2", 18432)
udp(A4, "0.0.0.0", 18068)
udp(A6, "::", 18546, v6only=0)
udp(A4, "127.0.0.53", 18053)
print("ready", flush=True)
time.sleep(120)
