#!/usr/bin/env python3
"""A TCP listener that never accepts, its accept queue filled, so that connects
to it hang in SYN_SENT (for connect-timeout tests).

Usage: python3 tests/blackhole.py PORT_FILE   writes the port to PORT_FILE, then
sleeps until killed.
"""
import os
import socket
import sys
import time

l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(0)
port = l.getsockname()[1]
fill = []
for _ in range(4):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fill.append(c)
time.sleep(0.3)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(port))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(3600)
