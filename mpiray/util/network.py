"""This host's address, as Ray's `ray.util.get_node_ip_address()` gives it."""

from __future__ import annotations

import functools
import socket


@functools.lru_cache(maxsize=1)
def get_node_ip_address() -> str:
    """The IPv4 address other hosts reach this one by: the source address of a route out
    (a UDP connect sends nothing), else what the host name resolves to, else loopback."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
