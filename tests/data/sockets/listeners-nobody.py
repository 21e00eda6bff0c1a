"""Started as user nobody beside listeners.py: sockets non-root netstat -p can name."""

import socket
import time

tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.bind(("0.0.0.0", 18900))
tcp.listen(5)
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp.bind(("::", 18901))
print("ready", flush=True)
time.sleep(120)
