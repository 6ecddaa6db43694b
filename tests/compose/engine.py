"""A Docker engine of the test's own: its own dockerd, socket, data root and address pool."""

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def _address_pool(key: str) -> str:
    """A /16 for this checkout's networks, so two checkouts' engines never share a subnet."""
    octet = 200 + int(hashlib.sha256(key.encode()).hexdigest(), 16) % 50
    return f"base=10.{octet}.0.0/16,size=24"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


@dataclass
class DockerEngine:
    """dockerd under `root` (kept between runs as a layer cache), with no iptables of its own.

    It shares the host's network namespace with any other engine, so it creates no docker0,
    leaves iptables alone and takes its subnets from a pool of its own. Builds that need the
    network (apt, PyPI) run with --network host.
    """

    root: Path
    exec_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ctd-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_root(self) -> Path:
        """Images, layers, volumes: persisted between runs."""
        return self.root / "docker"

    @property
    def socket(self) -> Path:
        """The API socket (short path: unix sockets allow ~100 bytes)."""
        return self.exec_root / "docker.sock"

    @property
    def pidfile(self) -> Path:
        """Where the pid of a running dockerd is kept, to stop a leftover one next time."""
        return self.root / "dockerd.pid"

    @property
    def log_path(self) -> Path:
        """dockerd's own log."""
        return self.root / "dockerd.log"

    def env(self) -> dict[str, str]:
        """Environment for docker and compose clients talking to this engine."""
        # Debian's CLI first: the one that matches the engine (compose v1 shells out to it).
        path = f"/usr/bin:{os.environ.get('PATH', '')}"
        return os.environ | {
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_BUILDKIT": "0",
            "PATH": path,
        }

    def start(self) -> None:
        """Start dockerd (stopping one a killed earlier run left behind) and wait for it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        command = [
            "dockerd",
            f"--host=unix://{self.socket}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.exec_root / 'dockerd.pid'}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            f"--default-address-pool={_address_pool(str(self.root))}",
            "--log-level=warn",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pidfile.write_text(f"{self.proc.pid} {self.exec_root}\n")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"dockerd did not start:\n{tail}")

    def stop(self) -> None:
        """SIGTERM dockerd (it stops its containers and containerd), then clean up after it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._release(self.exec_root)
        self.pidfile.unlink(missing_ok=True)

    def docker(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine."""
        result = subprocess.run(
            [docker_cli(), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result

    def _stop_leftover(self) -> None:
        """A run that was killed may have left its dockerd (recorded in our pidfile) running."""
        if not self.pidfile.exists():
            return
        pid_text, _, exec_root = self.pidfile.read_text().strip().partition(" ")
        pid = int(pid_text)
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and str(self.data_root).encode() in cmdline.read_bytes():
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, STOP_TIMEOUT):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
        if exec_root:
            self._release(Path(exec_root))
        self.pidfile.unlink(missing_ok=True)

    def _release(self, exec_root: Path) -> None:
        """Unmount what a dead engine left mounted (overlays, netns) and drop its exec root."""
        roots = (str(self.data_root) + "/", str(exec_root) + "/")
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mount in reversed(mounts):
            if mount.startswith(roots):
                subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)


def docker_cli() -> str:
    """The CLI that came with the engine (Debian's), else whichever is on PATH."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
