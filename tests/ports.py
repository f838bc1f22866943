"""Loopback ports for the test servers, chosen where other sockets do not land.

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` comes from the ephemeral
range, the same range every outgoing connection of the suite (PostgreSQL clients,
browsers, HTTP clients in parallel workers) takes its local port from. Between the
probe and the server's own bind another socket can take it ("Address already in
use"). Ports below the ephemeral range are only ever taken by an explicit bind.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: Linux's default ephemeral range starts here.
DEFAULT_EPHEMERAL_LOW = 32768
#: How many ports below the ephemeral range to choose from.
SPAN = 12000


def ephemeral_low() -> int:
    """The first port of this machine's ephemeral range."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that is free now and below the ephemeral range."""
    high = ephemeral_low()
    low = max(1024, high - SPAN)
    chooser = random.SystemRandom()
    for _ in range(200):
        port = chooser.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high} on {host}")
