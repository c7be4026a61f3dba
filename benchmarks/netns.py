"""Another device on this machine: a network namespace joined to it by a veth pair.

A student's laptop, for tests and benchmarks, without touching any real network: the namespace
reaches the host only at `HOST_ADDRESS` (a dashboard served on 0.0.0.0 sees it as a non-loopback
peer, a viewer), and the host reaches nothing but the namespace. Needs root and iproute2 (`ip`).

    with peer_namespace() as peer:
        subprocess.run(peer.command(["python", "client.py", f"http://{HOST_ADDRESS}:8501"]))
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST_ADDRESS, PEER_ADDRESS = "10.231.0.1", "10.231.0.2"  # a /30 of their own


class NamespaceUnavailable(RuntimeError):
    """No network namespace can be made here (not root, or no `ip`)."""


@dataclass(frozen=True)
class Peer:
    name: str  # the namespace

    def command(self, argv: list[str]) -> list[str]:
        """`argv`, run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def executable(self, program: str, folder: Path) -> Path:
        """A script in `folder` that runs `program` (with its arguments) inside the namespace: for
        tools that take a path to launch, such as Playwright's Chromium."""
        script = folder / f"{Path(program).name}-in-{self.name}"
        script.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {program} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return script


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True)


@contextmanager
def peer_namespace() -> Iterator[Peer]:
    """Create the namespace and its link, yield it, and remove both, whatever happens."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise NamespaceUnavailable("a network namespace needs root and iproute2 (ip)")
    tag = str(os.getpid() % 100_000)
    name, host_end, peer_end = f"lenet-peer-{tag}", f"lnh{tag}", f"lnp{tag}"  # interface names <= 15
    _ip("link", "del", host_end, check=False)  # left over by a killed run with a recycled pid
    _ip("netns", "del", name, check=False)
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", peer_end)
        _ip("link", "set", peer_end, "netns", name)
        _ip("addr", "add", f"{HOST_ADDRESS}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{PEER_ADDRESS}/30", "dev", peer_end)
        _ip("netns", "exec", name, "ip", "link", "set", peer_end, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield Peer(name)
    finally:
        _ip("link", "del", host_end, check=False)
        _ip("netns", "del", name, check=False)
