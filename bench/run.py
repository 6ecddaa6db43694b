"""`make bench`: the request path against nginx and a bare app, side by side, with wrk.

Starts the six services on free loopback ports over a throwaway PostgreSQL database and a
private redis-server, seeds ROWS items straight into the table, starts nginx (round-robin over
both servers) and two bare FastAPI apps (items in memory; writes to the same PostgreSQL), then
runs each workload on each of its cases RUNS times, interleaved, after one warm-up per case.
Medians, ratios, CPU and RSS go to bench/results/latest.{json,md,png}.

    make bench ARGS="--duration 5 --connections 32"     # or BENCH_DURATION=5 make bench
"""

import argparse
import asyncio
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import chart, fixtures, procs, report, wrk
from bench.cases import Bench
from tests.integration.conftest import OUTPUT
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.stack import Stack, free_port

RESULTS = Path(__file__).parent / "results"
# RSS bar of the issue: the six services; the helpers are references, not ours.
OURS = ("api_gateway", "load_balancer", "server", "server2", "cache", "monitoring")


def _args() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION", "8")))
    parser.add_argument("--warmup", type=float, default=float(env("BENCH_WARMUP", "3")))
    parser.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", "32")))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=int(env("BENCH_RUNS", "3")))
    parser.add_argument(
        "--pairs",
        type=int,
        default=int(env("BENCH_PAIRS", "12")),
        help="more d and g runs side by side after the rounds (g/d is judged on a few %%)",
    )
    parser.add_argument(
        "--pair-starts",
        type=int,
        default=int(env("BENCH_PAIR_STARTS", "3")),
        help="start d's and g's gateway, balancer and servers afresh this often over the pairs",
    )
    parser.add_argument(
        "--trace-sampling",
        type=float,
        default=fixtures.TRACE_SAMPLING,
        help="case g's sampling ratio (the bar is judged at the default)",
    )
    parser.add_argument("--items", type=int, default=1000, help="items read by id, updated")
    parser.add_argument("--rows", type=int, default=int(env("BENCH_ROWS", "100000")))
    parser.add_argument("--cases", default="".join(report.CASES), help="subset of abcdefg")
    parser.add_argument("--workloads", default=",".join(wrk.WORKLOADS))
    parser.add_argument("--rate-limit", default="1000000/minute", help="RATE_LIMIT in case d")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    unknown = set(args.workloads.split(",")) - set(wrk.WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; known: {','.join(wrk.WORKLOADS)}")
    return args


def _services(bench: Bench, rest: dict[str, tuple[float, float]]) -> dict[str, Any]:
    after = bench.memory()
    out: dict[str, Any] = {}
    for name in bench.pids:
        cpu = {
            case: round(seconds / bench.wall[case], 2)
            for case, seconds in bench.cpu[name].items()
            if bench.wall.get(case)
        }
        out[name] = {
            "rss_rest_mb": round(rest[name][0], 1),
            "rss_after_mb": round(after[name][0], 1),
            "rss_peak_mb": round(after[name][1], 1),
            "cpu": cpu,
            "limited": name in OURS,
        }
    return out


def _write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    md = [
        f"`{results['settings']['command']}`",
        "",
        f"Measured {results['machine']['date']} on {results['machine']['summary']}; "
        f"wrk {results['settings']['connections']} connections, "
        f"{results['settings']['threads']} threads, {results['settings']['duration']} s x "
        f"{results['settings']['runs']} interleaved runs (medians; a ratio is the median of "
        "each round's own), then "
        f"{results['settings'].get('pairs', 0)} more runs of d and g side by side, over "
        f"{results['settings'].get('pair_starts', 0)} fresh starts of their gateway, balancer "
        "and servers (g/d is the median over all their pairs); "
        f"{results['settings']['rows']} rows, {results['settings']['items']} read by id; "
        f"case d RATE_LIMIT {results['settings']['rate_limit']}"
        + (
            f"; case g samples {traces['sampling']:g} of the traces ({traces['spans']} spans "
            "received)"
            if (traces := results.get("traces"))
            else ""
        )
        + ". Load average "
        f"{results['machine']['load_before']:.1f} before, "
        f"{results['machine']['load_after']:.1f} after (the machine is shared).",
        "",
        report.table(results),
        "",
        report.services_table(results["services"]),
        "",
        *report.headline(results),
        "",
        "verdict: " + _verdict_line(report.verdict(results)),
        "",
    ]
    (out / "latest.md").write_text("\n".join(md))
    chart.draw(results, out / "latest.png")


def _prepare(
    args: argparse.Namespace, stack: Stack, helpers: dict[str, Any], workdir: Path
) -> tuple[str, list[int]]:
    """Log in, seed the table, start nginx and the bare apps: the token and the ids read."""
    token = fixtures.admin_token(stack)
    started = time.monotonic()
    asyncio.run(fixtures.seed(stack.database_url, args.rows))
    print(f"seeded {args.rows} rows in {time.monotonic() - started:.1f} s", flush=True)
    items = fixtures.first_items(
        stack.url("server"), {"Authorization": f"Bearer {token}"}, args.items
    )
    items_file = workdir / "items.json"
    items_file.write_bytes(orjson.dumps(items))
    ports = (stack.ports["server"], stack.ports["server2"])
    helpers["nginx"] = procs.start_nginx(workdir, free_port(), ports)
    helpers["bare_app"] = procs.start_bare(workdir, free_port(), items_file)
    helpers["bare_pg"] = procs.start_bare(workdir, free_port(), items_file, stack.database_url)
    return token, [item["id"] for item in items]


def _workloads(bench: Bench, token: str, ids: list[int]) -> dict[str, Any]:
    """Each workload asked for on each of its cases."""
    names = [name for name in bench.args.workloads.split(",") if bench.cases(name)]
    pairs = sum(len(bench.cases(name)) for name in names)
    args = bench.args
    minutes = pairs * (args.warmup + 1 + args.runs * (args.duration + 1)) / 60
    print(f"{pairs} workload x case pairs: about {minutes:.0f} min of wrk", flush=True)
    workloads = {}
    for name in names:
        print(f"workload {name} on {''.join(bench.cases(name))}", flush=True)
        workloads[name] = bench.workload(name, token, ids)
    return workloads


def _verdict_line(problems: list[str]) -> str:
    return "PASS" if not problems else "FAIL: " + "; ".join(problems)


def _exit_on_sigterm(signum: int, _: object) -> None:
    # SystemExit unwinds through main's finally, which stops every process the run started.
    sys.exit(128 + signum)


def _measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start everything, run the workloads, stop everything: what was measured."""
    redis_server = PrivateRedis(workdir)
    database = asyncio.run(create_database("bench"))
    stack = Stack(
        "bench",
        workdir,
        database,
        redis_server.url,
        extra_env={
            "RATE_LIMIT": args.rate_limit,
            "POLL_INTERVAL": "5",
            "HEALTH_INTERVAL": "2",
            # One token for the whole run, which can outlast the default 30 minutes.
            "ACCESS_TOKEN_MINUTES": "240",
        },
    )
    helpers: dict[str, Any] = {"redis": redis_server}
    # Case g's spans go to a real OTLP/HTTP receiver, which decodes every export (and counts
    # the spans rather than keeping them: a collector does not live in the bench's process).
    receiver = OtlpReceiver(keep=False) if "g" in args.cases else None
    traced = (
        fixtures.traced_stack(stack, receiver.endpoint, args.trace_sampling) if receiver else None
    )
    try:
        redis_server.start()
        stack.start_all()
        token, ids = _prepare(args, stack, helpers, workdir)
        if receiver is not None and traced is not None:
            receiver.__enter__()
            traced.start_all(fixtures.TRACED)
            helpers["traced"] = traced
        bench = Bench(args, stack, helpers)
        rest = bench.memory()
        workloads = _workloads(bench, token, ids)
        measured = {"workloads": workloads, "services": _services(bench, rest)}
    finally:
        for helper in ("bare_pg", "bare_app", "nginx"):
            if helper in helpers:
                helpers[helper].stop()
        if traced is not None:
            traced.stop_all()
        stack.stop_all()
        redis_server.stop()
        asyncio.run(drop_database(database))
        if receiver is not None:
            receiver.__exit__()
    if receiver is not None:
        measured["traces"] = {"sampling": args.trace_sampling, "spans": receiver.received}
    return measured


def main() -> int:
    """Run everything; exit 1 when a judged ratio misses its target or any request failed."""
    args = _args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = OUTPUT / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.log"):
        old.unlink()
    info = fixtures.machine()
    measured = _measure(args, workdir)
    info["load_after"] = os.getloadavg()[0]
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings["command"] = "python -m bench.run " + shlex.join(sys.argv[1:])
    workloads, services = measured["workloads"], measured["services"]
    results = {
        "machine": info,
        "settings": settings,
        "workloads": workloads,
        "cross": report.cross_ratios(workloads),
        "services": services,
        "traces": measured.get("traces"),
    }
    _write(results, args.out)
    print()
    print(report.table(results))
    print()
    print(report.services_table(services))
    print()
    print("\n".join(report.headline(results)))
    problems = report.verdict(results)
    print("verdict: " + _verdict_line(problems))
    print(f"written: {args.out}/latest.json, latest.md, latest.png")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
