"""The workloads as wrk Lua scripts, the cases each runs on, one wrk run parsed into numbers."""

import itertools
import json
import random
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from server.pages import encode_cursor

from bench.report import Run

# wrk prints this line from the script's done(); everything else it prints is ignored.
_MARK = "BENCH_RESULT "
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50":%d,"p95":%d,"p99":%d}\\n',
    "{mark}", summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
# Each wrk thread walks the same precomputed plan from its own starting point, a stride apart:
# with a plan of distinct URLs no thread reaches a page another one already asked for (and the
# page cache could answer) before it has sent plan/threads requests.
_WALK = """
local counter = 0
local offset = 0
local threads = 0
setup = function(thread)
  thread:set("offset", threads * stride)
  threads = threads + 1
end
init = function(args)
  offset = tonumber(wrk.thread:get("offset")) or 0
end
request = function()
  counter = counter + 1
  local op = plan[((offset + counter) % #plan) + 1]
  return wrk.format(op[1], op[2], op[3] and json_headers or nil, op[3])
end
"""
# workload -> the cases it runs on, in run order. The page workloads measure the database path
# of one server (a) and the full path (d); the writes also run against the bare app (e, in
# memory) and the bare app writing to the same PostgreSQL (f), the floor of a write.
WORKLOADS: dict[str, str] = {
    "get_item": "abcdge",
    "list": "abcde",
    "mix": "abcde",
    "page_first": "ad",
    "page_deep": "ad",
    "offset_deep": "a",
    # Last: they change rows (update) and add them (write), which the reads above would see.
    "update": "adef",
    "write": "abcdef",
}
# Every URL of these is distinct: the page cache must not answer them (the bench moves its
# generation on before each of their runs, and counts its hits to make sure).
DISTINCT = frozenset({"page_first", "page_deep", "offset_deep"})
PAGE = 20
# The mix's listings: a few queries many clients ask, answered from the page cache until a write.
MIX_LISTS = (
    "/itens?limit=20",
    "/itens?limit=20&sort=-id",
    "/itens?limit=20&offset=20",
    "/itens?limit=50",
)
Op = tuple[str, str, str | None]


def zipf_ranks(n: int, s: float, count: int, rng: random.Random) -> list[int]:
    """`count` ranks in 0..n-1, rank k drawn with probability proportional to 1/(k+1)^s."""
    weights = list(itertools.accumulate(1 / (k + 1) ** s for k in range(n)))
    return rng.choices(range(n), cum_weights=weights, k=count)


def cursor_after(item_id: int) -> str:
    """The cursor of the page (sort=id) that starts after item_id, as the server encodes it."""
    return encode_cursor(SimpleNamespace(id=item_id), "id")


def _body(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _pages(workload: str, rows: int, size: int, rng: random.Random) -> list[Op]:
    if rows < size + PAGE:
        raise ValueError(f"{workload} needs at least {size + PAGE} rows, the table has {rows}")
    # The pages after ids 1..size, or the last `size` full pages (the deepest starts at
    # rows - PAGE, page rows / PAGE: page 5,000 of 100,000 rows), in random order.
    first = workload == "page_first"
    starts = list(range(1, size + 1) if first else range(rows - PAGE - size + 1, rows - PAGE + 1))
    rng.shuffle(starts)
    if workload == "offset_deep":
        return [("GET", f"/itens?limit={PAGE}&offset={n}", None) for n in starts]
    return [("GET", f"/itens?limit={PAGE}&cursor={cursor_after(n)}", None) for n in starts]


def plan(
    workload: str, ids: list[int], *, rows: int = 0, seed: int = 8, size: int = 20_000
) -> list[Op]:
    """(method, path, body or None) for each request of the workload, in order.

    ids are the items read by id (and updated); rows is how many the table holds, ids 1..rows.
    """
    rng = random.Random(seed)
    if workload in DISTINCT:
        return _pages(workload, rows, size, rng)
    if workload == "write":
        return [
            ("POST", "/itens", _body(nome=f"Bench {n}", descricao="bench write", preco=1 + n % 997))
            for n in range(size)
        ]
    shuffled = list(ids)
    rng.shuffle(shuffled)  # popularity is unrelated to the id
    if workload == "update":
        # Passes of fresh shuffles: requests sent together (and the threads, a stride apart)
        # touch different rows, a measure of the write path, not of waits on one row's lock.
        order: list[int] = []
        while len(order) < size:
            rng.shuffle(shuffled)
            order += shuffled
        return [
            ("PUT", f"/itens/{i}", _body(nome=f"Produto {i} v{n}", preco=1 + n % 500))
            for n, i in enumerate(order[:size])
        ]
    hot = [shuffled[rank] for rank in zipf_ranks(len(shuffled), 1.1, size, rng)]
    if workload == "get_item":
        return [("GET", f"/itens/{i}", None) for i in hot]
    if workload == "list":
        return [("GET", f"/itens?limit={PAGE}", None)]
    if workload == "mix":
        # 80% reads by id, 15% listings, 5% writes (PUT of an item as popular as the reads).
        ops: list[Op] = []
        for n, item_id in enumerate(hot):
            draw = rng.random()
            if draw < 0.05:
                body = _body(nome=f"Produto {item_id}", preco=1 + n % 500)
                ops.append(("PUT", f"/itens/{item_id}", body))
            elif draw < 0.20:
                ops.append(("GET", rng.choice(MIX_LISTS), None))
            else:
                ops.append(("GET", f"/itens/{item_id}", None))
        return ops
    raise ValueError(f"unknown workload {workload!r}")


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a valid Lua string literal


def script(workload: str, ids: list[int], token: str, *, rows: int = 0, threads: int = 2) -> str:
    """A wrk script sending the workload's plan with the bearer token."""
    ops = plan(workload, ids, rows=rows)
    lua_rows = []
    for method, path, body in ops:
        fields = [_lua_string(method), _lua_string(path)]
        if body is not None:
            fields.append(_lua_string(body))
        lua_rows.append("{" + ",".join(fields) + "}")
    return (
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'json_headers = {["Content-Type"] = "application/json", '
        f'["Authorization"] = "Bearer {token}"}}\n'
        f"stride = {len(ops) // max(1, threads)}\n"
        "plan = {" + ",\n".join(lua_rows) + "}\n" + _WALK + _DONE.replace("{mark}", _MARK)
    )


def parse(output: str) -> Run:
    """req/s, latency percentiles (ms) and error count from one wrk run's output."""
    line = next(x for x in output.splitlines() if x.startswith(_MARK))
    raw = json.loads(line[len(_MARK) :])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    seconds = raw["duration_us"] / 1e6
    return {
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": raw["p50"] / 1000,
        "p95_ms": raw["p95"] / 1000,
        "p99_ms": raw["p99"] / 1000,
        "errors": float(errors),
        "requests": float(raw["requests"]),
    }


def run(url: str, script_path: Path, *, duration: float, connections: int, threads: int) -> Run:
    """One wrk run against url with the script; raises if wrk fails."""
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(script_path),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    )
    return parse(result.stdout)
