"""What a bench run starts from: the machine it measures on, and the items it reads."""

import asyncio
import os
import platform
import re
import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import wrk
from tests.integration.conftest import login
from tests.integration.stack import Stack

# Case g: the gateway's path again, with traces on as the issue prices them (10 % sampled).
TRACED = ("server", "server2", "load_balancer", "api_gateway")
TRACE_SAMPLING = 0.1
# A stack loaded for minutes by one client: no rate limit in the way, a token that outlasts it.
LOADED = {"RATE_LIMIT": "1000000/minute", "ACCESS_TOKEN_MINUTES": "60"}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx.strip().split("/")[-1],
        "load_before": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    info["summary"] = f"{info['cores']} x {cpu}, {info['memory_gb']} GB, Linux {info['kernel']}"
    return info


async def seed(database_url: str, rows: int) -> None:
    """rows items, ids 1..rows, straight into the migrated table: seconds, where HTTP takes
    minutes. The item and page caches start empty, so neither holds anything stale."""
    now = datetime.now(UTC)
    price = [Decimal(n) + Decimal("0.99") for n in range(1, 1001)]
    records = [
        (f"Produto {n}", f"Descrição do produto {n}", price[n % 1000], "admin", now, now)
        for n in range(1, rows + 1)
    ]
    columns = ["nome", "descricao", "preco", "owner", "created_at", "updated_at"]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table("itens", records=records, columns=columns)
        bounds = await conn.fetchrow("SELECT min(id), max(id), count(*) FROM itens")
        first, last, count = bounds if bounds is not None else (None, None, 0)
        # The page plans name ids 1..rows: a table that started non-empty would break them.
        if (first, last, count) != (1, rows, rows):
            raise RuntimeError(f"itens holds ids {first}..{last} ({count} rows), not 1..{rows}")
        # Statistics and the visibility map now, not when autovacuum gets to them mid-run.
        await conn.execute("VACUUM ANALYZE itens")
    finally:
        await conn.close()


def first_items(url: str, auth: dict[str, str], count: int) -> list[dict[str, Any]]:
    """The first count items as the server renders them, walking its Link headers."""
    items: list[dict[str, Any]] = []
    path: str | None = f"/itens?limit={min(count, 500)}"
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        while path and len(items) < count:
            response = client.get(path).raise_for_status()
            items += response.json()["data"]
            link = re.match(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
            path = link.group(1) if link else None
    return items[:count]


def traces_on(endpoint: str, sampling: float) -> dict[str, str]:
    """The OTEL_* variables that export `sampling` of the traces (parent-based) to endpoint."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": f"{sampling:g}",
    }


def traced_stack(stack: Stack, endpoint: str, sampling: float = TRACE_SAMPLING) -> Stack:
    """A second gateway, balancer and pair of servers over the same database and Redis (and
    signing key: one token serves both), exporting `sampling` of traces to endpoint."""
    workdir = stack.workdir / "traced"
    workdir.mkdir(exist_ok=True)
    env = stack.extra_env | traces_on(endpoint, sampling)
    return Stack(
        "bench-traced",
        workdir,
        stack.database_url,
        stack.redis_url,
        extra_env=env,
        secret_key=stack.secret_key,
    )


def admin_token(stack: Stack) -> str:
    """A token of the demo admin (DEMO_USERS is on in the bench's stacks), from a login through
    the stack's gateway."""
    return login(stack, "admin", "admin123")


def read_by_id(stack: Stack, workdir: Path, rows: int = 2000) -> Path:
    """Log in as admin through the stack's gateway, seed rows items into its (empty) database
    and write the wrk script reading the first 1,000 by id: its path."""
    access = admin_token(stack)
    asyncio.run(seed(stack.database_url, rows))
    script = workdir / "get_item.lua"
    script.write_text(wrk.script("get_item", list(range(1, 1001)), access, rows=rows))
    return script
