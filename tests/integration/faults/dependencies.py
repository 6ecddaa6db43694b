"""A PostgreSQL cluster of our own (never the shared one), so a test can stop and restart it."""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.integration.stack import free_port

# initdb and postgres refuse to run as root: as root, the cluster belongs to this account.
OWNER = "postgres"
# Superuser `postgres` without a password (trust: loopback only); no fsync, it is thrown away.
INITDB_ARGS = ("-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")


def postgres_bindir() -> Path | None:
    """Where initdb and postgres live (Debian keeps them out of PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major)
    if found:
        return Path(found[-1]).parent
    binary = shutil.which("postgres")
    return Path(binary).parent if binary else None


def _major(path: str) -> int:
    version = Path(path).parts[-3]
    return int(version) if version.isdigit() else 0


class PrivatePostgres:
    """initdb in a temporary directory, trust auth, a free loopback port; stopped by PID."""

    def __init__(self, bindir: Path, logfile: Path) -> None:
        self.bindir = bindir
        self.logfile = logfile
        self.port = free_port()
        self.user = OWNER if os.geteuid() == 0 else None
        # Not under pytest's tmp dir: that one is private to root, which the owner is not.
        self.datadir = Path(tempfile.mkdtemp(prefix="arquitetura-pg-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        """A seed-style DATABASE_URL for one of its databases."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        """Create the cluster."""
        if self.user:
            shutil.chown(self.datadir, self.user)
        subprocess.run(
            [self.bindir / "initdb", "-D", self.datadir, *INITDB_ARGS],
            user=self.user,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        """Run the postmaster in the foreground (its PID is ours) and wait until it accepts."""
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.datadir),
        }
        args = [a for name, value in settings.items() for a in ("-c", f"{name}={value}")]
        with self.logfile.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.bindir / "postgres", "-D", self.datadir, *args],
                user=self.user,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            ready = subprocess.run(
                [self.bindir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        tail = self.logfile.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"private PostgreSQL did not start:\n{tail}")

    def stop(self) -> None:
        """Fast shutdown, as `pg_ctl stop` does: sessions are cut, transactions rolled back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)

    def destroy(self) -> None:
        """Stop it and delete the cluster."""
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)
