"""A free TCP port on the loopback interface (for the sandboxes and throwaway test servers)."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
