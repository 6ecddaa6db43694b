"""What traces cost in instructions, a figure this shared machine does not move: one process
of the gateway's path at a time runs under valgrind's callgrind (the rest natively) while wrk
reads by id through the gateway, with traces off, at sampling 0 and at 10 %; the
instructions it spent per request it served, and the extra over traces off.

CPU time on this machine drifts by a fifth within minutes (bench.traces_twins); the same
code's instruction count repeats to about 1 %. It leaves out the kernel's work and what cache
misses cost, so a change's effect on CPU time is at least what it does here.

    PYTHONPATH=. .venv/bin/python -m bench.traces_instructions [--duration 20]

Writes bench/results/traces-instructions.md.
"""

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import fixtures, wrk
from tests.integration.conftest import OUTPUT
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.stack import SERVICES, Stack

RESULTS = Path(__file__).parent / "results" / "traces-instructions.md"
MEASURED = ("api_gateway", "load_balancer", "server")
SAMPLING = {"off": None, "on 0": 0.0, "on 0.1": fixtures.TRACE_SAMPLING}
# Requests the measured process answered: its counter of GET /itens/{id} (the server names
# the parameter item_id).
_SERVED = re.compile(r'^http_requests_total\{[^}]*route="/itens/\{\w+\}"[^}]*\} (\S+)$', re.M)


@dataclass
class ToolStack(Stack):
    """A stack whose `measured` processes run under a tool, as command() launches them."""

    measured: tuple[str, ...] = ("server",)

    def command(self, service: str) -> list[str]:
        """The command line of a measured service."""
        raise NotImplementedError

    def start(self, service: str) -> None:
        """Launch one service; a measured one under the tool."""
        if service not in self.measured:
            super().start(service)
            return
        with self.log_path(service).open("ab") as log:
            self.procs[service] = subprocess.Popen(
                self.command(service),
                env=self.env(service),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def served(self, service: str) -> float:
        """GET /itens/{id} the service has answered."""
        return sum(float(n) for n in _SERVED.findall(self.scrape(service).text))


@dataclass
class CallgrindStack(ToolStack):
    """A stack whose one measured process runs under callgrind, counting nothing until
    control() turns its instrumentation on; the counts go to `out` when it exits."""

    out: Path = Path("callgrind.out")

    def command(self, service: str) -> list[str]:
        """valgrind's callgrind, its instrumentation off, around the service."""
        return [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={self.out}",
            sys.executable,
            "-m",
            SERVICES[service][0],
        ]

    def control(self, *args: str) -> None:
        """callgrind_control on the measured process (vgdb finds it by the HOST it was given)."""
        (measured,) = self.measured
        subprocess.run(
            ["callgrind_control", *args, str(self.procs[measured].pid)],
            env=os.environ | {"HOST": self.env(measured)["HOST"]},
            check=True,
            capture_output=True,
        )


AnyToolStack = TypeVar("AnyToolStack", bound=ToolStack)


@contextlib.contextmanager
def running_twin(
    kind: type[AnyToolStack], twin: str, workdir: Path, endpoint: str, **fields: Any
) -> Iterator[AnyToolStack]:
    """A stack of this kind with `twin`'s traces (SAMPLING), over a database and a Redis of its
    own (its services for the caller to start); all of it stopped and dropped after."""
    workdir.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(workdir)
    database = asyncio.run(create_database("twin"))
    sampling = SAMPLING[twin]
    env = fixtures.LOADED | (fixtures.traces_on(endpoint, sampling) if sampling is not None else {})
    stack = kind(twin, workdir, database, redis_server.url, extra_env=env, **fields)
    try:
        redis_server.start()
        yield stack
    finally:
        stack.stop_all()
        redis_server.stop()
        asyncio.run(drop_database(database))


def _measure(stack: CallgrindStack, script: Path, duration: float) -> float:
    """Instructions per request the measured process served in one wrk run."""
    wrk.run(stack.url("api_gateway"), script, duration=10, connections=8, threads=1)  # warm-up
    (measured,) = stack.measured
    before = stack.served(measured)
    stack.control("--zero")
    stack.control("--instr=on")
    wrk.run(stack.url("api_gateway"), script, duration=duration, connections=8, threads=1)
    stack.control("--instr=off")
    served = stack.served(measured) - before
    stack.stop_all()  # callgrind writes its counts at exit
    totals = re.search(r"^totals: (\d+)", stack.out.read_text(), re.M)
    assert totals is not None, f"no totals in {stack.out}"
    return int(totals.group(1)) / served


def _run(args: argparse.Namespace, service: str, twin: str, endpoint: str) -> float:
    workdir = OUTPUT / "bench-instructions" / f"{service}-{twin.replace(' ', '-')}"
    fields = {"measured": (service,), "out": workdir / "callgrind.out"}
    with running_twin(CallgrindStack, twin, workdir, endpoint, **fields) as stack:
        for name in fixtures.TRACED:
            stack.start(name)
        for name in fixtures.TRACED:
            stack.wait_healthy(name, timeout=300)
        stack.wait_balanced(timeout=120)
        script = fixtures.read_by_id(stack, workdir)
        return _measure(stack, script, args.duration)


def _report(args: argparse.Namespace, counts: dict[str, dict[str, float]]) -> str:
    lines = [
        f"`python -m bench.traces_instructions --duration {args.duration:g}`",
        "",
        f"Measured {fixtures.machine()['date']}; wrk 8 connections through the gateway, "
        f"{args.duration:g} s with the process under callgrind; instructions per request that "
        "process answered (thousands), and the extra over traces off.",
        "",
        "| process | " + " | ".join(SAMPLING) + " | " + " | ".join(
            f"{twin} extra" for twin in list(SAMPLING)[1:]
        ) + " |",
        "|---|" + "---:|" * (2 * len(SAMPLING) - 1),
    ]  # fmt: skip
    for service, row in counts.items():
        off = row["off"]
        cells = [f"{row[twin] / 1000:.1f}" for twin in SAMPLING]
        extra = [
            f"+{(row[twin] - off) / 1000:.1f} ({row[twin] / off - 1:+.1%})"
            for twin in list(SAMPLING)[1:]
        ]
        lines.append(f"| {service} | " + " | ".join(cells + extra) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure each process in each twin, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--services", default=",".join(MEASURED))
    args = parser.parse_args()
    counts: dict[str, dict[str, float]] = {}
    with OtlpReceiver(keep=False) as receiver:
        for service in args.services.split(","):
            counts[service] = {}
            for twin in SAMPLING:
                counts[service][twin] = _run(args, service, twin, receiver.endpoint)
                print(f"{service} {twin}: {counts[service][twin]:,.0f}", flush=True)
    table = _report(args, counts)
    print(table)
    RESULTS.write_text(table)


if __name__ == "__main__":
    main()
