"""Processes the bench starts beside the stack (nginx, the bare app) and what they cost."""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream servers {{
    server 127.0.0.1:{a};
    server 127.0.0.1:{b};
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://servers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def tree(pid: int) -> list[int]:
    """pid and its direct children (nginx's workers)."""
    return [pid, *_children(pid)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    return sum(_cpu_ticks(f"/proc/{pid}/stat") for pid in pids) / CLOCK_TICKS


def main_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU time the process's first thread (its event loop's) has used so far;
    the rest of cpu_seconds([pid]) is its other threads' (an exporter's, a thread pool's)."""
    return _cpu_ticks(f"/proc/{pid}/task/{pid}/stat") / CLOCK_TICKS


def _cpu_ticks(stat: str) -> int:
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS now, peak RSS) in MB, summed over the processes."""
    rss = peak = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in status:
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1])
    return rss / 1024, peak / 1024


@dataclass
class Helper:
    """One process started by the bench, with its log."""

    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    def start(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        """Launch it."""
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ)
            )

    def wait_answering(self, path: str, timeout: float = 60) -> None:
        """Until GET path answers (any status); raises if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer on port {self.port}")

    @property
    def pid(self) -> int:
        """The (master) process id."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(workdir: Path, port: int, servers: tuple[int, int]) -> Helper:
    """nginx as our own process with a generated config: round-robin over the two servers."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    conf_dir = workdir / "nginx"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=conf_dir, port=port, a=servers[0], b=servers[1]))
    helper = Helper("nginx", port)
    helper.start(
        [binary, "-p", str(conf_dir), "-e", str(conf_dir / "nginx-error.log"), "-c", str(conf)],
        workdir / "nginx.log",
    )
    helper.wait_answering("/saude")
    return helper


def start_bare(
    workdir: Path, port: int, items_file: Path, database_url: str | None = None
) -> Helper:
    """Case (e)'s app under uvicorn; case (f)'s when it writes to database_url."""
    name = "bare_pg" if database_url else "bare_app"
    helper = Helper(name, port)
    env = dict(os.environ, BENCH_ITEMS=str(items_file))
    if database_url:
        env["BENCH_DATABASE_URL"] = database_url
    helper.start([sys.executable, "-m", "bench.bare_app", str(port)], workdir / f"{name}.log", env)
    helper.wait_answering("/itens?limit=1")
    return helper
