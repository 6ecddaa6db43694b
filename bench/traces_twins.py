"""What traces cost, from twin stacks: the gateway's path started twice from the same commit,
once with traces off and once with them on (and, with --unsampled, once more at sampling 0),
each a gateway, a balancer and two servers over one database and Redis, read by id through
the gateway in wrk runs that alternate between the twins (every other round backwards),
started --starts times afresh (the same code started again runs differently). With
--together the twins are loaded at the same time instead, each by its own wrk: this shared
machine's speed drifts by a tenth or more within seconds, which moves alternate runs apart
but every twin of one round alike, so their CPU per request compares within about 2 %.

Prints, per round, each twin's req/s and the CPU its four processes spent per request (from
/proc); then the medians, the ratios of each twin to the twin with traces off (req/s and CPU
per request, medians of the rounds' own), and where the extra CPU went, per process. Writes
bench/results/traces-twins.md.

    PYTHONPATH=. .venv/bin/python -m bench.traces_twins --starts 3 --rounds 4 --unsampled
    PYTHONPATH=. .venv/bin/python -m bench.traces_twins --together --rounds 8 --unsampled
"""

import argparse
import asyncio
import statistics
import threading
from pathlib import Path

from bench import fixtures, procs, wrk
from tests.integration.conftest import OUTPUT
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.stack import Stack

RESULTS = Path(__file__).parent / "results" / "traces-twins.md"


def _twins(args: argparse.Namespace, endpoint: str) -> dict[str, dict[str, str] | None]:
    twins: dict[str, dict[str, str] | None] = {"off": None}
    twins[f"on {args.sampling:g}"] = fixtures.traces_on(endpoint, args.sampling)
    if args.unsampled:
        twins["on 0"] = fixtures.traces_on(endpoint, 0)
    return twins


def _report(
    args: argparse.Namespace, rounds: dict[str, list[tuple[float, dict[str, float]]]]
) -> str:
    off = rounds["off"]
    lines = [
        f"`python -m bench.traces_twins --starts {args.starts} --rounds {args.rounds} "
        f"--duration {args.duration:g}"
        f"{' --unsampled' if args.unsampled else ''}{' --together' if args.together else ''}`",
        "",
        f"Measured {fixtures.machine()['date']}; "
        + (
            f"the twins loaded together, wrk {32 // len(rounds)} connections, 1 thread each; "
            if args.together
            else "wrk 32 connections, 2 threads, the twins in turn; "
        )
        + f"{args.starts} start(s) of the twins, {args.rounds} rounds each; medians over all "
        "rounds; ratios: median of each round's own (and per start); CPU: µs per request.",
        "",
        "| twin | req/s | ratio to off | per start | rounds | CPU | CPU / off | "
        + " | ".join(fixtures.TRACED)
        + " |",
        "|---|---:|---:|---|---|---:|---:|" + "---:|" * len(fixtures.TRACED),
    ]
    for name, runs in rounds.items():
        each = [rps / base for (rps, _), (base, _) in zip(runs, off, strict=True)]
        cpu_each = [
            sum(c.values()) / sum(b.values()) for (_, c), (_, b) in zip(runs, off, strict=True)
        ]
        starts = [each[i : i + args.rounds] for i in range(0, len(each), args.rounds)]
        cpu = {s: statistics.median(c[s] for _, c in runs) for s in fixtures.TRACED}
        total = statistics.median(sum(c.values()) for _, c in runs)
        lines.append(
            f"| {name} | {statistics.median(r for r, _ in runs):.0f} | "
            f"{statistics.median(each):.3f} | "
            f"{', '.join(f'{statistics.median(one):.2f}' for one in starts)} | "
            f"{', '.join(f'{r:.2f}' for r in each)} | "
            f"{total:.0f} | {statistics.median(cpu_each):.3f} | "
            + " | ".join(f"{cpu[s]:.0f}" for s in fixtures.TRACED)
            + " |"
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
    parser.add_argument("--together", action="store_true", help="load the twins at once")
    args = parser.parse_args()
    workdir = OUTPUT / "bench-twins"
    workdir.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(workdir)
    database = asyncio.run(create_database("twins"))
    receiver = OtlpReceiver(keep=False)
    env = fixtures.LOADED
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
        turns = [names] if args.together else [[n] for n in names]
        for turn in turns if round_ % 2 == 0 else turns[::-1]:
            for name, measured in _load(args, {n: stacks[n] for n in turn}, script).items():
                rounds[name].append(measured)
                rps, cpu = measured
                print(f"round {round_ + 1} {name}: {rps:.0f} req/s, "
                      f"{sum(cpu.values()):.0f} µs CPU per request", flush=True)  # fmt: skip


def _load(
    args: argparse.Namespace, stacks: dict[str, Stack], script: Path
) -> dict[str, tuple[float, dict[str, float]]]:
    """wrk on each of these twins at once (32 connections shared): req/s and CPU per request
    of each process."""
    pids = {n: {s: [p.pid] for s, p in stack.procs.items()} for n, stack in stacks.items()}
    before = {n: {s: procs.cpu_seconds(p) for s, p in each.items()} for n, each in pids.items()}
    runs: dict[str, wrk.Run] = {}

    def drive(name: str) -> None:
        runs[name] = wrk.run(
            stacks[name].url("api_gateway"),
            script,
            duration=args.duration,
            connections=32 // len(stacks),
            threads=2 if len(stacks) == 1 else 1,
        )

    threads = [threading.Thread(target=drive, args=(name,)) for name in stacks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = {
        name: {s: procs.cpu_seconds(p) - before[name][s] for s, p in pids[name].items()}
        for name in stacks
    }
    return {
        name: (run["rps"], {s: c / run["requests"] * 1e6 for s, c in spent[name].items()})
        for name, run in runs.items()
    }


if __name__ == "__main__":
    main()
