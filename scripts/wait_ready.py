"""Wait until every service of `make up` answers /saude, then print where everything is."""

import json
import os
import sys
import time
import urllib.error
import urllib.request

SERVICES = [
    ("api_gateway", int(os.environ.get("GATEWAY_PORT", "8000")), "/docs"),
    ("load_balancer", int(os.environ.get("BALANCER_PORT", "8001")), "/status"),
    ("server", int(os.environ.get("SERVER_PORT", "8002")), "/docs"),
    ("server2", int(os.environ.get("SERVER2_PORT", "8003")), "/docs"),
    ("cache", int(os.environ.get("CACHE_PORT", "8004")), "/docs"),
    ("monitoring", int(os.environ.get("MONITOR_PORT", "8005")), "/dashboard"),
]
BALANCER_PORT = next(port for name, port, _ in SERVICES if name == "load_balancer")
HOST = os.environ.get("READY_HOST", "127.0.0.1")
DEADLINE_SECONDS = float(os.environ.get("READY_TIMEOUT", "90"))


def answers(port: int) -> bool:
    """True when /saude returns 200 (and, for the balancer, says every backend is up)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/saude", timeout=2) as response:
            if port == BALANCER_PORT:
                # Ready means requests get through: the balancer has seen the servers answer.
                return bool(json.load(response)["data"]["status"] == "ok")
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return False


def main() -> int:
    """Poll until all answer or the deadline passes; print the table either way."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    pending = {port for _, port, _ in SERVICES}
    while pending and time.monotonic() < deadline:
        pending = {port for port in pending if not answers(port)}
        if pending:
            time.sleep(0.5)
    rows = [
        f"  {name:<14} {'up' if port not in pending else 'NOT READY':<10} "
        f"http://localhost:{port}{page}"
        for name, port, page in SERVICES
    ]
    print(
        "\n".join(
            [
                "",
                "=" * 64,
                "  service        state      open",
                *rows,
                "",
                "  logins: admin/admin123 (admin), user/user123 (user)",
                "  stop:   Ctrl-C",
                "=" * 64,
                "",
            ]
        ),
        flush=True,
    )
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main())
