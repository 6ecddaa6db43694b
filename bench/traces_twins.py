"""What traces cost, from twin stacks: the gateway's path started twice from the same commit,
once with traces off and once with them on (and, with --unsampled, once more at sampling 0),
each a gateway, a balancer and two servers over one database and Redis, read by id through
the gateway in wrk runs that alternate between the twins (every other round backwards),
started --starts times afresh (the same code started again runs differently).

Prints, per round, each twin's req/s and the CPU its four processes spent per request (from
/proc); then the medians, the ratio of each twin to the twin with traces off (median of the
rounds' own), and where the extra CPU went, per process. Writes bench/results/traces-twins.md.

    PYTHONPATH=. .venv/bin/python -m bench.traces_twins --starts 3 --rounds 4 --unsampled
"""

import argparse
import asyncio
import statistics
from pathlib import Path

from bench import fixtures, procs, wrk
from tests.integration.conftest import OUTPUT
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.stack import Stack

RESULTS = Path(__file__).parent / "results" / "traces-twins.md"


def _twins(args: argparse.Namespace, endpoint: str) -> dict[str, dict[str, str] | None]:
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    }
    twins: dict[str, dict[str, str] | None] = {"off": None}
    twins[f"on {args.sampling:g}"] = traced | {"OTEL_TRACES_SAMPLER_ARG": str(args.sampling)}
    if args.unsampled:
        twins["on 0"] = traced | {"OTEL_TRACES_SAMPLER_ARG": "0"}
    return twins


def _report(
    args: argparse.Namespace, rounds: dict[str, list[tuple[float, dict[str, float]]]]
) -> str:
    off = rounds["off"]
    lines = [
        f"`python -m bench.traces_twins --starts {args.starts} --rounds {args.rounds} "
        f"--duration {args.duration:g}"
        f"{' --unsampled' if args.unsampled else ''}`",
        "",
        f"Measured {fixtures.machine()['date']}; wrk 32 connections, 2 threads; "
        f"{args.starts} start(s) of the twins, {args.rounds} rounds each; medians over all "
        "rounds; ratio: median of each round's own (and per start); CPU: µs per request.",
        "",
        "| twin | req/s | ratio to off | per start | rounds | CPU | "
        + " | ".join(fixtures.TRACED)
        + " |",
        "|---|---:|---:|---|---|---:|" + "---:|" * len(fixtures.TRACED),
    ]
    for name, runs in rounds.items():
        each = [rps / base for (rps, _), (base, _) in zip(runs, off, strict=True)]
        starts = [each[i : i + args.rounds] for i in range(0, len(each), args.rounds)]
        cpu = {s: statistics.median(c[s] for _, c in runs) for s in fixtures.TRACED}
        total = statistics.median(sum(c.values()) for _, c in runs)
        lines.append(
            f"| {name} | {statistics.median(r for r, _ in runs):.0f} | "
            f"{statistics.median(each):.3f} | "
            f"{', '.join(f'{statistics.median(one):.2f}' for one in starts)} | "
            f"{', '.join(f'{r:.2f}' for r in each)} | "
            f"{total:.0f} | " + " | ".join(f"{cpu[s]:.0f}" for s in fixtures.TRACED) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Start the twins, measure, stop everything, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--sampling", type=float, default=fixtures.TRACE_SAMPLING)
    parser.add_argument("--unsampled", action="store_true", help="a third twin at sampling 0")
    parser.add_argument("--starts", type=int, default=1, help="start the twins this often")
    args = parser.parse_args()
    workdir = OUTPUT / "bench-twins"
    workdir.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(workdir)
    database = asyncio.run(create_database("twins"))
    receiver = OtlpReceiver(keep=False)
    env = {"RATE_LIMIT": "1000000/minute", "ACCESS_TOKEN_MINUTES": "60"}
    stacks = {
        name: Stack(name, workdir / name.replace(" ", "-"), database, redis_server.url,
                    extra_env=env | (otel or {}), secret_key="twins-" * 8)
        for name, otel in _twins(args, receiver.endpoint).items()
    }  # fmt: skip
    rounds: dict[str, list[tuple[float, dict[str, float]]]] = {name: [] for name in stacks}
    try:
        redis_server.start()
        receiver.__enter__()
        for stack in stacks.values():
            stack.workdir.mkdir(exist_ok=True)
            stack.start_all(fixtures.TRACED)
        script = fixtures.read_by_id(stacks["off"], workdir)
        for start in range(args.starts):
            if start:  # fresh processes: the same code started again runs differently
                for stack in stacks.values():
                    stack.stop_all()
                    stack.start_all(fixtures.TRACED)
            _rounds(args, stacks, script, rounds)
    finally:
        for stack in stacks.values():
            stack.stop_all()
        redis_server.stop()
        asyncio.run(drop_database(database))
        receiver.__exit__()
    table = _report(args, rounds)
    print(table + f"spans received: {receiver.received}")
    RESULTS.write_text(table + f"\nSpans the receiver decoded: {receiver.received}.\n")


def _rounds(
    args: argparse.Namespace,
    stacks: dict[str, Stack],
    script: Path,
    rounds: dict[str, list[tuple[float, dict[str, float]]]],
) -> None:
    """A warm-up of each twin, then args.rounds rounds over the twins."""
    for stack in stacks.values():
        wrk.run(stack.url("api_gateway"), script, duration=3, connections=32, threads=2)
    names = list(stacks)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            stack = stacks[name]
            pids = {s: [p.pid] for s, p in stack.procs.items()}
            before = {s: procs.cpu_seconds(p) for s, p in pids.items()}
            run = wrk.run(stack.url("api_gateway"), script, duration=args.duration,
                          connections=32, threads=2)  # fmt: skip
            cpu = {s: (procs.cpu_seconds(p) - before[s]) / run["requests"] * 1e6
                   for s, p in pids.items()}  # fmt: skip
            rounds[name].append((run["rps"], cpu))
            print(f"round {round_ + 1} {name}: {run['rps']:.0f} req/s, "
                  f"{sum(cpu.values()):.0f} µs CPU per request, errors {int(run['errors'])}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
