"""The three workloads as wrk Lua scripts, and one wrk run parsed into numbers."""

import itertools
import json
import random
import subprocess
from pathlib import Path

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
# Each wrk thread walks the same precomputed plan from its own starting point.
_WALK = """
local counter = 0
local offset = 0
local threads = 0
setup = function(thread)
  thread:set("offset", threads * 7919)
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
WORKLOADS = ("get_item", "list", "mix")


def zipf_ranks(n: int, s: float, count: int, rng: random.Random) -> list[int]:
    """`count` ranks in 0..n-1, rank k drawn with probability proportional to 1/(k+1)^s."""
    weights = list(itertools.accumulate(1 / (k + 1) ** s for k in range(n)))
    return rng.choices(range(n), cum_weights=weights, k=count)


def plan(workload: str, ids: list[int], *, seed: int = 8, size: int = 20_000) -> list[tuple]:
    """(method, path, body or None) for each request of the workload, in order."""
    rng = random.Random(seed)
    shuffled = list(ids)
    rng.shuffle(shuffled)  # popularity is unrelated to the id
    hot = [shuffled[rank] for rank in zipf_ranks(len(shuffled), 1.1, size, rng)]
    if workload == "get_item":
        return [("GET", f"/itens/{i}", None) for i in hot]
    if workload == "list":
        return [("GET", "/itens?limit=20", None)]
    if workload == "mix":
        ops: list[tuple] = []
        for n, item_id in enumerate(hot):
            if rng.random() < 0.1:
                body = json.dumps({"nome": f"Produto {item_id}", "preco": 1 + n % 500})
                ops.append(("PUT", f"/itens/{item_id}", body))
            else:
                ops.append(("GET", f"/itens/{item_id}", None))
        return ops
    raise ValueError(f"unknown workload {workload!r}")


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a valid Lua string literal


def script(workload: str, ids: list[int], token: str) -> str:
    """A wrk script sending the workload's plan with the bearer token."""
    rows = []
    for method, path, body in plan(workload, ids):
        fields = [_lua_string(method), _lua_string(path)]
        if body is not None:
            fields.append(_lua_string(body))
        rows.append("{" + ",".join(fields) + "}")
    return (
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'json_headers = {["Content-Type"] = "application/json", '
        f'["Authorization"] = "Bearer {token}"}}\n'
        "plan = {" + ",\n".join(rows) + "}\n" + _WALK + _DONE.replace("{mark}", _MARK)
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
