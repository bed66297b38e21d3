"""Resetting clients for tests/hostile_test.ts, in Python: a third-party client.

Each client connects and at once closes with SO_LINGER {on, 0}, so the kernel
sends an RST instead of a FIN, as port scanners do. The server usually has not
accepted the connection yet, so its accept() meets a connection that is gone.

Usage:
  python3 _hostile_clients.py burst PORT COUNT
      COUNT clients back to back.
  python3 _hostile_clients.py spread PORT PER_SECOND SECONDS
      One client every 1/PER_SECOND s.
  python3 _hostile_clients.py pulsed PORT PER_SECOND SECONDS
      PER_SECOND clients back to back at the start of every second.

Prints one JSON line:
  {"connected": N, "failed": N, "errors": {KIND: N}, "skipped": N, "seconds": S}
clients whose handshake completed; clients whose connect failed or timed out,
by Python exception; and clients not even tried because the run passed its
deadline (a stalled server fills its listen queue, then every connect waits).
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
# A connect that takes longer means the server's listen queue is full; the
# client gives up rather than block the run (the test bounds its time).
CONNECT_TIMEOUT = 0.5
RESET = struct.pack("ii", 1, 0)
# A run's deadline beyond its schedule, in seconds.
SLACK = 5.0


def reset_client(port: int) -> str | None:
    """Connects and resets; returns None, or why the connect failed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        s.settimeout(CONNECT_TIMEOUT)
        s.connect((HOST, port))
        return None
    except OSError as error:
        return type(error).__name__
    finally:
        s.close()


def schedule(mode: str, args: list[str]) -> list[float]:
    """When each client starts, in seconds from the start of the run."""
    if mode == "burst":
        return [0.0] * int(args[0])
    per_second, seconds = int(args[0]), int(args[1])
    if mode == "spread":
        return [i / per_second for i in range(per_second * seconds)]
    if mode == "pulsed":
        return [float(s) for s in range(seconds) for _ in range(per_second)]
    sys.exit(f"unknown mode {mode!r}")


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    starts = schedule(mode, sys.argv[3:])
    start = time.monotonic()
    deadline = start + starts[-1] + SLACK
    connected = skipped = 0
    errors: dict[str, int] = {}
    # On a monotonic schedule, so a slow connect does not shift the rest.
    for at in starts:
        now = time.monotonic()
        if now > deadline:
            skipped += 1
            continue
        if start + at > now:
            time.sleep(start + at - now)
        error = reset_client(port)
        if error is None:
            connected += 1
        else:
            errors[error] = errors.get(error, 0) + 1
    seconds = round(time.monotonic() - start, 3)
    print(json.dumps({
        "connected": connected,
        "failed": sum(errors.values()),
        "errors": errors,
        "skipped": skipped,
        "seconds": seconds,
    }))


if __name__ == "__main__":
    main()
