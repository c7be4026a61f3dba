"""A Ray cluster of two machines on this one: the head on this machine's end of a veth pair, the
worker node in a network namespace (benchmarks/netns.py) as another machine of the lab would be.
Every address is given: Ray never looks up this machine's own. For the tests and the benchmark;
needs root, iproute2 and Ray (`make ray`).

    with RayCluster(folder) as cluster:        # the head and one worker node, 1 CPU each
        os.environ["LENET_RAY_ADDRESS"] = cluster.address
        ...
        cluster.kill_worker_raylet()           # the worker node dies
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from pathlib import Path

from .netns import HOST_ADDRESS, PEER_ADDRESS, peer_namespace

HEAD, WORKER = HOST_ADDRESS, PEER_ADDRESS
RAY = str(Path(sys.executable).with_name("ray"))
# No usage reports (no internet here), no dashboard, a small object store: a laptop's cluster
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_NODE_IP_ADDRESS": HEAD}
OBJECT_STORE_BYTES = str(300 * 1024 * 1024)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RayCluster:
    def __init__(self, folder: Path, *, head_cpus: int = 1, worker_cpus: int = 1, worker: bool = True):
        self.folder, self.head_cpus, self.worker_cpus, self.with_worker = (
            folder,
            head_cpus,
            worker_cpus,
            worker,
        )
        self.port: int | None = None  # the head's, once its address exists
        self.processes: list[subprocess.Popen] = []
        self.worker: subprocess.Popen | None = None
        self._stack = ExitStack()
        self.started_s: float | None = None  # from `ray start` to every node up

    def __enter__(self) -> RayCluster:
        started = time.monotonic()
        self.peer = self._stack.enter_context(peer_namespace())
        self.port = free_port(HEAD)
        self._stack.callback(self._stop)
        common = ["--block", "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_BYTES}"]
        self._start(
            "head",
            [RAY, "start", "--head", f"--node-ip-address={HEAD}", f"--port={self.port}"]
            + [f"--num-cpus={self.head_cpus}", "--include-dashboard=false", *common],
        )
        self.wait_for_nodes(1)
        if self.with_worker:
            self.add_worker()
        self.started_s = time.monotonic() - started
        return self

    @property
    def address(self) -> str:
        return f"{HEAD}:{self.port}"

    def add_worker(self) -> None:
        argv = [RAY, "start", f"--address={self.address}", f"--node-ip-address={WORKER}"]
        argv += [f"--num-cpus={self.worker_cpus}", "--block", f"--object-store-memory={OBJECT_STORE_BYTES}"]
        self.worker = self._start("worker", self.peer.command(argv))
        self.wait_for_nodes(2)

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"ray-{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV},
            start_new_session=True,  # its own process group: stopped whole
        )
        self.processes.append(process)
        return process

    def nodes(self) -> list[dict]:
        """The cluster's live nodes, asked of the head's GCS from a short-lived driver."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, log_to_driver=False);"
            "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, **ENV},
            timeout=120,
        )
        if out.returncode != 0:
            return []
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.nodes()) < count:
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in self.folder.glob("ray-*.log"))
                raise RuntimeError(f"the Ray cluster did not reach {count} node(s):\n{logs}")
            time.sleep(1)

    def kill_worker_raylet(self) -> None:
        """The worker node's machine dies: its raylet and everything it started, at once."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        for pid in _pids_with(f"--node-ip-address={WORKER}") + _pids_with(f"node_ip_address={WORKER}"):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _stop(self) -> None:
        for process in reversed(self.processes):  # the worker node first, while the head can drain it
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # what `ray start --block` leaves when stopped hard: this cluster's own processes only
        for pid in _pids_with(f"{HEAD}:{self.port}") + _pids_with(f"={WORKER}"):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def __exit__(self, *exc) -> None:
        self._stack.close()


def _pids_with(text: str) -> list[int]:
    """Processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
