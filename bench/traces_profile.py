"""What traces add to each process's event loop, in Python calls: the gateway, the balancer and
a server run under cProfile (bench.profiled) while wrk reads by id through the gateway, with
traces off, at sampling 0 and at 10 %; per request each process answered, the calls of each
function, and those a twin makes beyond traces off.

Calls are what the interpreter pays most for on this path, and their count does not depend on
the machine: it shows which work a change adds or removes (bench.traces_instructions counts
the instructions of all of it, bench.tracing_calls those of each piece).

    PYTHONPATH=. .venv/bin/python -m bench.traces_profile [--duration 10] [--top 25]

Writes bench/results/traces-profile.md.
"""

import argparse
import itertools
import os
import pstats
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import fixtures, wrk
from bench.traces_instructions import MEASURED, SAMPLING, ToolStack, running_twin
from tests.integration.conftest import OUTPUT
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.stack import SERVICES

RESULTS = Path(__file__).parent / "results" / "traces-profile.md"
REPO = Path(__file__).resolve().parents[1]
Calls = dict[str, float]  # function -> calls per request
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


@dataclass
class ProfiledStack(ToolStack):
    """A stack whose measured processes run under bench.profiled."""

    measured: tuple[str, ...] = MEASURED

    def command(self, service: str) -> list[str]:
        """The service's module run by bench.profiled."""
        return [sys.executable, "-m", "bench.profiled", SERVICES[service][0]]

    def env(self, service: str) -> dict[str, str]:
        """The stack's environment, plus where a measured service writes its profile (and
        where bench.profiled is found, from the service's own directory)."""
        env = super().env(service)
        if service in self.measured:
            env["PROFILE_OUT"] = str(self.profile(service))
            env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        return env

    def profile(self, service: str) -> Path:
        """Where a measured service writes its calls."""
        return self.workdir / f"{service}.prof"


def function_name(key: tuple[str, int, str]) -> str:
    """A pstats key as `path:line(function)`, the path from its package on."""
    path, line, function = key
    function = _ADDRESS.sub("", function)  # a built-in's type object, which differs per process
    for marker in ("site-packages/", f"{REPO}/", "/lib/python3.11/"):
        path = path.split(marker)[-1]
    return f"{path}:{line}({function})" if path != "~" else function


def per_request(stats: pstats.Stats, served: float) -> Calls:
    """Calls of each function per request."""
    raw: dict[tuple[str, int, str], tuple[int, ...]] = stats.stats  # type: ignore[attr-defined]
    calls: Calls = {}
    for key, (_, total, *_) in raw.items():
        name = function_name(key)
        calls[name] = calls.get(name, 0.0) + total / served
    return calls


def changed_calls(base: Calls, twin: Calls, top: int) -> list[tuple[float, str]]:
    """The functions whose calls per request differ most from base's (at least 0.05)."""
    changed = [(twin.get(n, 0.0) - base.get(n, 0.0), n) for n in base.keys() | twin.keys()]
    kept = [(delta, name) for delta, name in changed if abs(delta) >= 0.05]
    return sorted(kept, key=lambda item: (-abs(item[0]), item[1]))[:top]


def _measure(args: argparse.Namespace, twin: str, endpoint: str) -> dict[str, Calls]:
    workdir = OUTPUT / "bench-profile" / twin.replace(" ", "-")
    with running_twin(ProfiledStack, twin, workdir, endpoint) as stack:
        profiles = {service: stack.profile(service) for service in MEASURED}
        for old in profiles.values():
            old.unlink(missing_ok=True)
        stack.start_all(fixtures.TRACED)
        script = fixtures.read_by_id(stack, workdir)
        url = stack.url("api_gateway")
        wrk.run(url, script, duration=5, connections=8, threads=1)  # warm-up
        before = {service: stack.served(service) for service in MEASURED}
        for service in MEASURED:
            stack.procs[service].send_signal(signal.SIGUSR1)
        wrk.run(url, script, duration=args.duration, connections=8, threads=1)
        for service in MEASURED:
            stack.procs[service].send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not all(p.exists() for p in profiles.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return {
            service: per_request(
                pstats.Stats(str(profiles[service])), stack.served(service) - before[service]
            )
            for service in MEASURED
        }


def _report(args: argparse.Namespace, calls: dict[str, dict[str, Calls]]) -> str:
    lines = [
        f"`python -m bench.traces_profile --duration {args.duration:g} --top {args.top}`",
        "",
        f"Measured {fixtures.machine()['date']}; wrk 8 connections through the gateway, "
        f"{args.duration:g} s with each process's event loop under cProfile; Python calls "
        "(functions and built-ins) per request the process answered.",
        "",
        "| process | " + " | ".join(SAMPLING) + " |",
        "|---|" + "---:|" * len(SAMPLING),
    ]
    for service in MEASURED:
        totals = [f"{sum(calls[twin][service].values()):.1f}" for twin in SAMPLING]
        lines.append(f"| {service} | " + " | ".join(totals) + " |")
    twins = list(SAMPLING)
    for base, twin in itertools.pairwise(twins):
        for service in MEASURED:
            lines += ["", f"{service}, {twin} against {base}:", ""]
            lines += ["| calls | function |", "|---:|---|"]
            found = changed_calls(calls[base][service], calls[twin][service], args.top)
            lines += [f"| {delta:+.2f} | `{name}` |" for delta, name in found]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Profile each twin, print and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    calls: dict[str, dict[str, Calls]] = {}
    with OtlpReceiver(keep=False) as receiver:
        for twin in SAMPLING:
            calls[twin] = _measure(args, twin, receiver.endpoint)
            print(twin, {s: round(sum(c.values()), 1) for s, c in calls[twin].items()}, flush=True)
    table = _report(args, calls)
    print(table)
    RESULTS.write_text(table)


if __name__ == "__main__":
    main()
