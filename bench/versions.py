"""Two versions of the gateway's path side by side: a checkout of an earlier commit and this
one, each a gateway, a balancer and two servers over one database and Redis, read by id
through the gateway in interleaved wrk runs. Prints req/s of each and their ratio per round.

    git worktree add /tmp/before <commit>
    PYTHONPATH=. .venv/bin/python -m bench.versions /tmp/before --rounds 5
"""

import argparse
import asyncio
import statistics
from pathlib import Path

from bench import fixtures, wrk
from tests.integration.conftest import OUTPUT
from tests.integration.databases import create_database, drop_database
from tests.integration.gateways import PrivateRedis
from tests.integration.stack import Stack

HOPS = ("server", "server2", "load_balancer", "api_gateway")
MEMBERS = ("common", "api_gateway", "load_balancer", "server", "cache", "monitoring")


def main() -> None:
    """Start both versions, measure, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout (git worktree) of the earlier commit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8)
    args = parser.parse_args()
    workdir = OUTPUT / "bench-versions"
    workdir.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(workdir)
    database = asyncio.run(create_database("versions"))
    # The earlier commit's packages shadow the installed (editable) ones of this checkout.
    old = ":".join(str(args.before.resolve() / member / "src") for member in MEMBERS)
    env = fixtures.LOADED
    stacks = {
        name: Stack(
            name,
            workdir / name,
            database,
            redis_server.url,
            extra_env=env | ({"PYTHONPATH": old} if name == "before" else {}),
            secret_key="versions-" * 8,
        )
        for name in ("before", "now")
    }
    rps: dict[str, list[float]] = {name: [] for name in stacks}
    try:
        redis_server.start()
        for stack in stacks.values():
            stack.workdir.mkdir(exist_ok=True)
            stack.start_all(HOPS)
        script = fixtures.read_by_id(stacks["now"], workdir)
        for stack in stacks.values():  # warm-up
            wrk.run(stack.url("api_gateway"), script, duration=3, connections=32, threads=2)
        for _ in range(args.rounds):
            for name, stack in stacks.items():
                run = wrk.run(
                    stack.url("api_gateway"),
                    script,
                    duration=args.duration,
                    connections=32,
                    threads=2,
                )
                rps[name].append(run["rps"])
                print(f"{name}: {run['rps']:.0f} req/s, errors {int(run['errors'])}", flush=True)
    finally:
        for stack in stacks.values():
            stack.stop_all()
        redis_server.stop()
        asyncio.run(drop_database(database))
    ratios = [now / before for now, before in zip(rps["now"], rps["before"], strict=True)]
    before, now = statistics.median(rps["before"]), statistics.median(rps["now"])
    print(f"median req/s: before {before:.0f}, now {now:.0f}")
    rounds = [round(r, 3) for r in ratios]
    print(f"now/before per round: {rounds}, median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
