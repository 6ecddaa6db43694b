"""The running system of a bench run, and how one workload is driven over its cases."""

import argparse
import re
import time
from pathlib import Path
from typing import Any

import httpx

from bench import fixtures, procs, report, wrk
from tests.integration.conftest import OUTPUT
from tests.integration.stack import Stack, stop_process


def fresh_starts(pairs: int, starts: int) -> set[int]:
    """The pairs before which d's and g's paths start afresh: `starts` blocks of pairs, as
    even as they divide."""
    starts = min(starts, pairs)
    return {pairs * start // starts for start in range(starts)}


def add_lookups(
    total: dict[str, float], after: dict[str, float], before: dict[str, float]
) -> dict[str, float]:
    """total plus the page-cache lookups counted between before and after."""
    return {k: total.get(k, 0.0) + v - before.get(k, 0.0) for k, v in after.items()}


class Bench:
    """The running stack plus nginx and the bare app, and what each run measured."""

    def __init__(self, args: argparse.Namespace, stack: Stack, helpers: dict[str, Any]) -> None:
        self.args = args
        self.stack = stack
        self.helpers = helpers
        self.urls = {
            "a": stack.url("server"),
            "b": f"http://127.0.0.1:{helpers['nginx'].port}",
            "c": stack.url("load_balancer"),
            "d": stack.url("api_gateway"),
            "e": f"http://127.0.0.1:{helpers['bare_app'].port}",
            "f": f"http://127.0.0.1:{helpers['bare_pg'].port}",
        }
        self.pids = {name: [proc.pid] for name, proc in stack.procs.items()}
        traced: Stack | None = helpers.get("traced")
        if traced is not None:
            self.urls["g"] = traced.url("api_gateway")
            self.pids |= {f"traced {name}": [proc.pid] for name, proc in traced.procs.items()}
        self.pids["nginx"] = procs.tree(helpers["nginx"].pid)
        self.pids["bare_app"] = [helpers["bare_app"].pid]
        self.pids["bare_pg"] = [helpers["bare_pg"].pid]
        self.pids["redis"] = [helpers["redis"].proc.pid]
        self.cpu: dict[str, dict[str, float]] = {name: {} for name in self.pids}
        self.wall: dict[str, float] = {}

    def cases(self, workload: str) -> list[str]:
        """The cases the workload runs on, of those asked for."""
        return [case for case in wrk.WORKLOADS[workload] if case in self.args.cases]

    def new_generation(self, auth: dict[str, str]) -> None:
        """Move the page cache on (a write does), so no page a run loaded answers the next."""
        body = {"nome": "Produto generation", "preco": 1}
        httpx.put(
            f"{self.urls['a']}/itens/{self.args.rows}", json=body, headers=auth
        ).raise_for_status()

    def page_lookups(self) -> dict[str, float]:
        """item_page_cache_lookups_total by result, summed over both servers."""
        totals: dict[str, float] = {}
        for service in ("server", "server2"):
            text = self.stack.scrape(service).raise_for_status().text
            for result, value in re.findall(
                r'^item_page_cache_lookups_total\{result="(\w+)"\} (\S+)$', text, re.M
            ):
                totals[result] = totals.get(result, 0.0) + float(value)
        return totals

    def measure(self, case: str, script: Path, duration: float, record: bool) -> report.Run:
        """One wrk run; CPU per service is added to the case's total when recorded."""
        before = {name: procs.cpu_seconds(pids) for name, pids in self.pids.items()}
        started = time.monotonic()
        result = wrk.run(
            self.urls[case],
            script,
            duration=duration,
            connections=self.args.connections,
            threads=self.args.threads,
        )
        if record:
            self.wall[case] = self.wall.get(case, 0.0) + time.monotonic() - started
            for name, pids in self.pids.items():
                spent = procs.cpu_seconds(pids) - before[name]
                self.cpu[name][case] = self.cpu[name].get(case, 0.0) + spent
        return result

    def workload(self, name: str, token: str, ids: list[int]) -> dict[str, Any]:
        """Warm every case up once, then RUNS interleaved rounds over the cases, then PAIRS
        more runs of d and g side by side, over PAIR_STARTS fresh starts of their paths."""
        script = OUTPUT / "bench" / f"{name}.lua"
        script.write_text(
            wrk.script(name, ids, token, rows=self.args.rows, threads=self.args.threads)
        )
        auth = {"Authorization": f"Bearer {token}"}
        distinct = name in wrk.DISTINCT
        cases = self.cases(name)
        before = self.page_lookups()
        lookups: dict[str, float] = {}
        for case in cases:
            if distinct:
                self.new_generation(auth)
            self.measure(case, script, self.args.warmup, record=False)
        runs: dict[str, list[report.Run]] = {case: [] for case in cases}
        for round_ in range(self.args.runs):
            # Every other round backwards: cases next to each other swap which goes first.
            for case in cases if round_ % 2 == 0 else cases[::-1]:
                if distinct:
                    self.new_generation(auth)
                result = self.measure(case, script, self.args.duration, record=True)
                runs[case].append(result)
                print(
                    f"  {name} round {round_ + 1} case {case}: {result['rps']:.0f} req/s, "
                    f"p99 {result['p99_ms']:.1f} ms, errors {int(result['errors'])}",
                    flush=True,
                )
        # g/d judges a cost of a few per cent, and one pair of runs swings by a tenth on this
        # shared machine: more pairs, side by side, each order as often as the other.
        paired = [case for case in ("d", "g") if case in cases]
        pairs = self.args.pairs if len(paired) == 2 else 0
        # The same code started again runs faster or slower by up to a tenth, for the whole
        # life of its processes: the pairs run on several starts of both paths, not one.
        fresh = fresh_starts(pairs, self.args.pair_starts)
        for pair in range(pairs):
            if pair in fresh:
                # A fresh server counts its lookups from 0: count the old ones first.
                lookups = add_lookups(lookups, self.page_lookups(), before)
                self.start_paths_afresh()
                before = self.page_lookups()
                for case in paired:
                    self.measure(case, script, self.args.warmup, record=False)
            for case in paired if pair % 2 == 0 else paired[::-1]:
                if distinct:
                    self.new_generation(auth)
                result = self.measure(case, script, self.args.duration, record=True)
                runs[case].append(result)
                print(f"  {name} pair {pair + 1} {case}: {result['rps']:.0f} req/s", flush=True)
        lookups = add_lookups(lookups, self.page_lookups(), before)
        summaries = {case: report.summarize(r) for case, r in runs.items()}
        return {
            "cases": summaries,
            "ratios": report.ratios(runs),
            "runs": runs,
            # Warm-ups included: a hit in any run of a distinct workload spoils its figures.
            "page_cache": lookups,
            "distinct": distinct,
        }

    def start_paths_afresh(self) -> None:
        """Stop and start the gateway, balancer and servers of d and of g (the token, the
        database and Redis stay)."""
        stacks = {"": self.stack}
        traced: Stack | None = self.helpers.get("traced")
        if traced is not None:
            stacks["traced "] = traced
        for prefix, stack in stacks.items():
            for service in fixtures.TRACED:
                stop_process(stack.procs[service])
            stack.start_all(fixtures.TRACED)
            self.pids |= {prefix + s: [stack.procs[s].pid] for s in fixtures.TRACED}
        # A login hashes a password (argon2: 19 MiB for a moment): the gateway's peak memory,
        # which the bench judges, includes one, as it did before the restart.
        fixtures.admin_token(self.stack)
        print("  started the paths of d and g afresh", flush=True)

    def memory(self) -> dict[str, tuple[float, float]]:
        """(RSS, peak RSS) per service now."""
        return {name: procs.memory_mb(pids) for name, pids in self.pids.items()}
