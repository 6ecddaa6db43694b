#!/usr/bin/env python3
"""`make compose-up`: the system in containers, with a .env of fresh secrets made on first use.

    python3 scripts/compose_up.py               .env if needed, `up --build`, wait until healthy
    python3 scripts/compose_up.py --env-only    only create (or complete) the env file
    python3 scripts/compose_up.py --down        `down` (the postgres-data volume stays)

The env file (--env-file, default .env) is created from .env.example when missing, with
SECRET_KEY, POSTGRES_PASSWORD, METRICS_TOKEN and FIRST_ADMIN_PASSWORD generated; the admin's
username and password are printed then, once. An existing file is never rewritten: only a
secret it leaves blank (or lacks: a .env older than the setting) is filled in, in place, and
nothing else changes. A secret exported in the shell is left to the shell (compose prefers it).

`docker compose` (v2) runs `up -d --build --wait`; the v1 `docker-compose`, which has no
--wait, runs `up -d --build` and this script then waits until every container is healthy.
Compose itself reads COMPOSE_PROJECT_NAME, COMPOSE_FILE (':'-separated) and DOCKER_HOST from
the environment. Standard library only: any python3 runs it.
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / ".env.example"
# Generated when blank. Hex for the database password: it goes into DATABASE_URL as it is.
SECRETS: dict[str, Callable[[], str]] = {
    "SECRET_KEY": lambda: secrets.token_hex(32),
    "POSTGRES_PASSWORD": lambda: secrets.token_hex(24),
    "METRICS_TOKEN": lambda: secrets.token_urlsafe(32),
    "FIRST_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(18),  # 24 characters
}
WAIT_TIMEOUT = float(os.environ.get("COMPOSE_WAIT_TIMEOUT", "300"))
# Restarts of one container, while waiting, that mean it will not come up by itself.
CRASH_LOOP = 3


def parse_env(text: str) -> dict[str, str]:
    """NAME=value lines (comments and blank lines skipped); the last one of a name wins."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def fill_secrets(text: str, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """text with every blank or missing secret generated; and what was generated."""
    values = parse_env(text)
    generated = {
        name: make()
        for name, make in SECRETS.items()
        if not values.get(name) and not environ.get(name)
    }
    lines = text.splitlines()
    placed = set()
    for index, line in enumerate(lines):
        name, sep, value = line.partition("=")
        name = name.strip()
        if sep and name in generated and not value.strip() and not line.lstrip().startswith("#"):
            lines[index] = f"{name}={generated[name]}"
            placed.add(name)
    lines += [f"{name}={value}" for name, value in generated.items() if name not in placed]
    return "".join(f"{line}\n" for line in lines), generated


def ensure_env_file(env_file: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Create env_file from .env.example, or complete its blank secrets; say what was done."""
    created = not env_file.exists()
    text, generated = fill_secrets(
        EXAMPLE.read_text() if created else env_file.read_text(), environ
    )
    if created:
        # O_EXCL: never over a file that appeared meanwhile; 0600: it holds secrets.
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        print(f"Created {env_file} from .env.example, with fresh secrets.")
    elif generated:
        env_file.write_text(text)
        print(f"Filled in the blank secrets of {env_file}: {', '.join(generated)}.")
    if "FIRST_ADMIN_PASSWORD" in generated:
        username = parse_env(text).get("FIRST_ADMIN_USERNAME") or "admin"
        print(
            "The gateway creates this admin at its first start (the password is in"
            f" {env_file}; it is not shown again):\n"
            f"  username: {username}\n"
            f"  password: {generated['FIRST_ADMIN_PASSWORD']}"
        )
    return generated


def compose_command() -> tuple[list[str], bool]:
    """The compose CLI, and whether it has `up --wait` (v2 has, v1 has not)."""
    docker = shutil.which("docker")
    if docker and _quiet([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"], True
    legacy = shutil.which("docker-compose")
    if legacy:
        version = _quiet([legacy, "version", "--short"]).stdout.strip().lstrip("v")
        return [legacy], version.startswith("2")
    sys.exit("Docker Compose not found: install `docker compose` (v2) or `docker-compose`")


def _quiet(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        command, cwd=REPO, capture_output=True, text=True, check=False
    )


def container_states(compose: list[str]) -> dict[str, tuple[str, str, int]]:
    """container id -> (name, health or, without a health check, state; restart count)."""
    ids = _quiet([*compose, "ps", "-q"]).stdout.split()
    if not ids:
        return {}
    inspected = _quiet(["docker", "inspect", *ids])
    states: dict[str, tuple[str, str, int]] = {}
    for container in json.loads(inspected.stdout or "[]"):
        state = container["State"]
        status = (state.get("Health") or {}).get("Status") or state["Status"]
        name = container["Name"].lstrip("/")
        states[container["Id"]] = (name, status, int(container["RestartCount"]))
    return states


def wait_healthy(compose: list[str], timeout: float = WAIT_TIMEOUT) -> None:
    """What `up --wait` does: return once every container is healthy (or running, without a
    health check); exit when one keeps crashing, or after timeout seconds."""
    print("Waiting until every container is healthy (docker-compose v1 has no --wait) ...")
    start = time.monotonic()
    states = container_states(compose)
    restarts_before = {cid: restarts for cid, (_, _, restarts) in states.items()}
    while time.monotonic() - start < timeout:
        if states and all(status in {"healthy", "running"} for _, status, _ in states.values()):
            print(f"All {len(states)} containers healthy after {time.monotonic() - start:.0f} s.")
            return
        looping = [
            name
            for cid, (name, _, restarts) in states.items()
            if restarts - restarts_before.get(cid, 0) >= CRASH_LOOP
        ]
        for name in looping:
            logs = _quiet(["docker", "logs", "--tail", "30", name])
            print(f"--- {name}, last log lines:\n{logs.stdout}{logs.stderr}", file=sys.stderr)
        if looping:
            sys.exit(f"{', '.join(looping)} keeps restarting (its logs are above)")
        time.sleep(2)
        states = container_states(compose)
    waiting = {name: status for name, status, _ in states.values() if status != "healthy"}
    sys.exit(f"not healthy after {timeout:.0f} s: {waiting} (see `docker-compose logs`)")


def main() -> None:
    """Parse the arguments and do what they ask."""
    parser = argparse.ArgumentParser(description="make compose-up: .env, then the stack")
    parser.add_argument("--env-file", type=Path, default=REPO / ".env")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--env-only", action="store_true", help="only create or complete it")
    what.add_argument("--down", action="store_true", help="stop and remove the containers")
    args = parser.parse_args()
    env_file: Path = args.env_file.resolve()
    if not args.down:
        ensure_env_file(env_file)
    if args.env_only:
        return
    cli, has_wait = compose_command()
    compose = [*cli, "--env-file", str(env_file)]
    if args.down:
        command = [*compose, "down"]
    else:
        command = [*compose, "up", "-d", "--build", *(["--wait"] if has_wait else [])]
    print("+", Path(cli[0]).name, *command[1:], flush=True)
    code = subprocess.run(command, cwd=REPO, check=False).returncode  # noqa: S603
    if code != 0:
        sys.exit(code)
    if args.down:
        return
    if not has_wait:
        wait_healthy(compose)
    ports = parse_env(env_file.read_text()) | {
        k: v for k, v in os.environ.items() if k.endswith("_PORT")
    }
    print(
        f"Gateway:   http://localhost:{ports.get('GATEWAY_PORT') or 8000}/docs\n"
        f"Dashboard: http://localhost:{ports.get('MONITOR_PORT') or 8005}/dashboard\n"
        "Stop with `make compose-down` (the database volume stays)."
    )


if __name__ == "__main__":
    main()
