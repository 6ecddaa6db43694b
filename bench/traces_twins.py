"""What traces cost, from twin stacks: the gateway's path started more than once from the same
commit, once with traces off and once per sampling ratio asked for (--sampling 0.1,1; with
--unsampled, once more at sampling 0), each a gateway, a balancer and two servers over one
database and Redis, read by id through the gateway in wrk runs that alternate between the
twins (every other round backwards), started --starts times afresh (the same code started
again runs differently). With --together the twins are loaded at the same time instead, each
by its own wrk: this shared machine's speed drifts by a tenth or more within seconds, which
moves alternate runs apart but every twin of one round alike, so their CPU per request
compares within about 2 %.

Prints, per round, each twin's req/s and the CPU its four processes spent per request (from
/proc); then the medians, the ratios of each twin to the twin with traces off (req/s and CPU
per request, medians of the rounds' own), the CPU of the processes' event loops and of their
other threads (the span exporter's), and where the extra CPU went, per process. Writes
bench/results/traces-twins.md.

    PYTHONPATH=. .venv/bin/python -m bench.traces_twins --starts 3 --rounds 4 --unsampled
    PYTHONPATH=. .venv/bin/python -m bench.traces_twins --together --rounds 8 --sampling 0.1,1
"""

import argparse
import asyncio
import statistics
import threading
from pathlib import Path
from typing import NamedTuple

from bench import fixtures, procs, wrk
from tests.integration.conftest import OUTPUT
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.stack import Stack

RESULTS = Path(__file__).parent / "results" / "traces-twins.md"


class Measured(NamedTuple):
    """One twin's run: req/s, and the CPU per request (µs) of each process and of each
    process's event-loop thread (the rest is its other threads': the span exporter's)."""

    rps: float
    cpu: dict[str, float]
    loop: dict[str, float]


def _twins(args: argparse.Namespace, endpoint: str) -> dict[str, dict[str, str] | None]:
    twins: dict[str, dict[str, str] | None] = {"off": None}
    for ratio in [float(r) for r in args.sampling.split(",")] + ([0.0] if args.unsampled else []):
        twins[f"on {ratio:g}"] = fixtures.traces_on(endpoint, ratio)
    return twins


def _report(args: argparse.Namespace, rounds: dict[str, list[Measured]]) -> str:
    off = rounds["off"]
    lines = [
        f"`python -m bench.traces_twins --starts {args.starts} --rounds {args.rounds} "
        f"--duration {args.duration:g} --sampling {args.sampling}"
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
        "| twin | req/s | ratio to off | per start | rounds | CPU | CPU / off | event loops | "
        "other threads | " + " | ".join(fixtures.TRACED) + " |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|" + "---:|" * len(fixtures.TRACED),
    ]
    for name, runs in rounds.items():
        each = [run.rps / base.rps for run, base in zip(runs, off, strict=True)]
        cpu_each = [
            sum(run.cpu.values()) / sum(base.cpu.values())
            for run, base in zip(runs, off, strict=True)
        ]
        starts = [each[i : i + args.rounds] for i in range(0, len(each), args.rounds)]
        cpu = {s: statistics.median(run.cpu[s] for run in runs) for s in fixtures.TRACED}
        total = statistics.median(sum(run.cpu.values()) for run in runs)
        loops = statistics.median(sum(run.loop.values()) for run in runs)
        others = statistics.median(sum(run.cpu.values()) - sum(run.loop.values()) for run in runs)
        lines.append(
            f"| {name} | {statistics.median(run.rps for run in runs):.0f} | "
            f"{statistics.median(each):.3f} | "
            f"{', '.join(f'{statistics.median(one):.2f}' for one in starts)} | "
            f"{', '.join(f'{r:.2f}' for r in each)} | "
            f"{total:.0f} | {statistics.median(cpu_each):.3f} | {loops:.0f} | {others:.1f} | "
            + " | ".join(f"{cpu[s]:.0f}" for s in fixtures.TRACED)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Start the twins, measure, stop everything, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument(
        "--sampling",
        default=f"{fixtures.TRACE_SAMPLING:g}",
        help="the traced twins' sampling ratios, comma-separated (one twin each)",
    )
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
    rounds: dict[str, list[Measured]] = {name: [] for name in stacks}
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
    rounds: dict[str, list[Measured]],
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
                cpu = sum(measured.cpu.values())
                print(f"round {round_ + 1} {name}: {measured.rps:.0f} req/s, "
                      f"{cpu:.0f} µs CPU per request", flush=True)  # fmt: skip


def _load(args: argparse.Namespace, stacks: dict[str, Stack], script: Path) -> dict[str, Measured]:
    """wrk on each of these twins at once (32 connections shared): req/s and CPU per request
    of each process and its event loop."""
    pids = {n: {s: p.pid for s, p in stack.procs.items()} for n, stack in stacks.items()}

    def spent() -> dict[str, dict[str, tuple[float, float]]]:
        return {
            name: {
                s: (procs.cpu_seconds([pid]), procs.main_thread_cpu_seconds(pid))
                for s, pid in each.items()
            }
            for name, each in pids.items()
        }

    before = spent()
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
    after = spent()
    measured = {}
    for name, run in runs.items():
        per_request = 1e6 / run["requests"]
        now, then = after[name], before[name]
        measured[name] = Measured(
            run["rps"],
            {s: (now[s][0] - then[s][0]) * per_request for s in now},
            {s: (now[s][1] - then[s][1]) * per_request for s in now},
        )
    return measured


if __name__ == "__main__":
    main()
