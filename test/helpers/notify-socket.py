"""A fake NOTIFY_SOCKET for tests: binds an AF_UNIX datagram socket (a path, or @name in the
abstract namespace), prints "ready", then one JSON line per datagram received: its text and
CLOCK_MONOTONIC in microseconds at receipt. With "hold" it binds and never reads, so the
sender's queue fills."""
import json
import socket
import sys
import time

address = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + address[1:] if address.startswith("@") else address)
print("ready", flush=True)
if len(sys.argv) > 2 and sys.argv[2] == "hold":
    sys.stdin.read()
    sys.exit(0)
while True:
    data = s.recv(65536)
    print(json.dumps({"at": time.monotonic_ns() // 1000, "message": data.decode()}), flush=True)
