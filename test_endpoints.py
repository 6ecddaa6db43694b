#!/usr/bin/env python3
"""A readable end-to-end client: walks the whole system the way a user would.

Start the services first (`make up`), then:

    .venv/bin/python test_endpoints.py                      # against localhost:8000-8005
    .venv/bin/python test_endpoints.py --base-url http://gateway.example:8000 --cache-url ...

Each step prints one line (✓ or ✗, what was called, what came back). The exit code is 0 when
every step passed, 1 otherwise. Base URLs can also come from GATEWAY_URL, BALANCER_URL,
SERVER_URL, SERVER2_URL, CACHE_URL and MONITOR_URL, as for quick_test.sh.
"""

import argparse
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__test__ = False  # a client to run by hand, not a pytest module

SERVICES = {
    "api_gateway": ("--base-url", "GATEWAY_URL", 8000),
    "load_balancer": ("--balancer-url", "BALANCER_URL", 8001),
    "server": ("--server-url", "SERVER_URL", 8002),
    "server2": ("--server2-url", "SERVER2_URL", 8003),
    "cache": ("--cache-url", "CACHE_URL", 8004),
    "monitoring": ("--monitor-url", "MONITOR_URL", 8005),
}


Check = Callable[[httpx.Response], str | None]


def field_is(get: Callable[[httpx.Response], object], want: object) -> Check:
    """A check that one field of the answer has the wanted value."""

    def check(response: httpx.Response) -> str | None:
        got = get(response)
        return None if got == want else f"got {got!r}, want {want!r}"

    return check


class StepFailed(Exception):
    """A step whose answer the following steps cannot do without."""


@dataclass
class Walk:
    """The client, the URLs and the tally of passed and failed steps."""

    urls: dict[str, str]
    client: httpx.Client
    token: str = ""
    passed: int = 0
    failed: list[str] = field(default_factory=list)

    def call(
        self,
        label: str,
        method: str,
        url: str,
        expect: int,
        *,
        check: Check | None = None,
        note: Callable[[httpx.Response], str] | None = None,
        auth: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """One request and its line; `check` says what is wrong with the answer, if anything.

        Returns the answer when the step passed, None when it failed.
        """
        headers = kwargs.pop("headers", {})
        token = self.token if auth is None else auth
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            self._fail(label, f"{method} {url}: {type(exc).__name__}: {exc}")
            return None
        problem = None
        if response.status_code != expect:
            problem = f"got {response.status_code}, want {expect}: {response.text[:200]}"
        elif check is not None:
            problem = check(response)
        if problem:
            self._fail(label, problem)
            return None
        self.passed += 1
        print(f"  \u2713 {label:<46} {method} {url.split('//', 1)[-1]} -> {response.status_code}")
        if note is not None:
            print(f"      {note(response)}")
        return response

    def need(self, label: str, method: str, url: str, expect: int, **kwargs: Any) -> httpx.Response:
        """A step the following ones cannot do without: stop the walk if it fails."""
        response = self.call(label, method, url, expect, **kwargs)
        if response is None:
            raise StepFailed(label)
        return response

    def _fail(self, label: str, problem: str) -> None:
        self.failed.append(label)
        print(f"  \u2717 {label:<46} {problem}")


def section(title: str) -> None:
    """A heading between groups of steps."""
    print(f"\n{title}")


def health(walk: Walk) -> None:
    """Every service answers /saude."""
    section("1. health of the six services")
    for service, url in walk.urls.items():
        walk.call(
            f"{service} /saude",
            "GET",
            f"{url}/saude",
            200,
            auth="",
            check=field_is(lambda r: r.json()["data"]["service"], service),
        )


def accounts(walk: Walk) -> str:
    """Register a new user, log in as it and as admin; returns the new user's token."""
    section("2. accounts")
    gateway = walk.urls["api_gateway"]
    name = f"client{uuid.uuid4().hex[:10]}"
    credentials = {"username": name, "password": "client-pass-123"}
    walk.call(f"register {name}", "POST", f"{gateway}/register", 201, json=credentials, auth="")
    walk.call(
        "the same name again is a conflict",
        "POST",
        f"{gateway}/register",
        409,
        json=credentials,
        auth="",
    )
    user = walk.need(
        f"log in as {name}",
        "POST",
        f"{gateway}/login",
        200,
        json=credentials,
        auth="",
    )
    walk.call(
        "a wrong password is refused",
        "POST",
        f"{gateway}/login",
        401,
        json={"username": "admin", "password": "wrong"},
        auth="",
    )
    admin = walk.need(
        "log in as admin",
        "POST",
        f"{gateway}/login",
        200,
        auth="",
        json={"username": "admin", "password": "admin123"},
    )
    walk.token = admin.json()["data"]["access_token"]
    walk.call(
        "who am I",
        "GET",
        f"{gateway}/me",
        200,
        check=field_is(lambda r: r.json()["data"]["role"], "admin"),
    )
    return str(user.json()["data"]["access_token"])


def items(walk: Walk, user_token: str) -> None:
    """Create, read, list, replace and delete an item through gateway -> balancer -> servers."""
    section("3. items through the gateway")
    gateway = walk.urls["api_gateway"]
    walk.call("no token, no items", "GET", f"{gateway}/itens", 401, auth="")
    body = {"nome": "Item Teste", "descricao": "Descrição", "preco": 99.99}
    created = walk.need("create an item", "POST", f"{gateway}/itens", 201, json=body)
    item = created.json()["data"]
    url = f"{gateway}/itens/{item['id']}"
    walk.call(
        f"read item {item['id']}",
        "GET",
        url,
        200,
        check=field_is(lambda r: r.json()["data"]["preco"], 99.99),
    )
    walk.call(
        "it is in the listing",
        "GET",
        f"{gateway}/itens",
        200,
        params={"q": "item teste"},
        check=field_is(lambda r: item["id"] in [i["id"] for i in r.json()["data"]], True),
    )
    walk.call(
        "replace it",
        "PUT",
        url,
        200,
        json=body | {"preco": 12.5},
        headers={"If-Match": created.headers["ETag"]},
        check=field_is(lambda r: r.json()["data"]["version"], 2),
    )
    walk.call("another user may not delete it", "DELETE", url, 403, auth=user_token)
    walk.call(
        "an invalid item is refused",
        "POST",
        f"{gateway}/itens",
        422,
        json={"nome": "", "preco": -1},
    )
    walk.call("the owner deletes it", "DELETE", url, 200)
    walk.call("it is gone", "GET", url, 404)


def cache(walk: Walk) -> None:
    """Store, read, count and delete a key in the cache service."""
    section("4. cache")
    url = walk.urls["cache"]
    key = f"client:{uuid.uuid4().hex[:8]}"
    value = {"nome": "Item Teste", "preco": 99.99}
    walk.call(
        f"store {key}", "POST", f"{url}/cache", 201, json={"key": key, "value": value, "ttl": 60}
    )
    walk.call(
        "read it back",
        "GET",
        f"{url}/cache/{key}",
        200,
        check=field_is(lambda r: r.json()["data"]["value"], value),
    )
    walk.call(
        "hit counted in /cache/stats",
        "GET",
        f"{url}/cache/stats",
        200,
        check=field_is(lambda r: r.json()["data"]["namespaces"]["client"]["hits"] >= 1, True),
    )
    walk.call("delete it", "DELETE", f"{url}/cache/{key}", 200)
    walk.call("a miss is 404", "GET", f"{url}/cache/{key}", 404)


def balancer(walk: Walk) -> None:
    """Both servers are up at the balancer and took requests."""
    section("5. load balancer")

    def backends(response: httpx.Response) -> str:
        return ", ".join(
            f"{b['name']} {b['state']} ({b['requests']} requests)"
            for b in response.json()["data"]["backends"]
        )

    walk.call(
        "backends and their statistics",
        "GET",
        f"{walk.urls['load_balancer']}/status",
        200,
        auth="",
        check=field_is(lambda r: [b["state"] for b in r.json()["data"]["backends"]], ["up", "up"]),
        note=backends,
    )
    for service in ("server", "server2"):
        walk.call(
            f"{service} answers directly (with a token)",
            "GET",
            f"{walk.urls[service]}/itens",
            200,
            params={"limit": 1},
            check=field_is(lambda r: r.headers.get("X-Served-By"), service),
        )


def monitoring(walk: Walk) -> None:
    """The monitor sees the six services, computes stats and knows its rules."""
    section("6. monitoring")
    url = walk.urls["monitoring"]

    def states(response: httpx.Response) -> dict[str, str]:
        return {s["name"]: s["status"] for s in response.json()["data"]["services"]}

    walk.call(
        "the six services as the monitor sees them",
        "GET",
        f"{url}/health",
        200,
        auth="",
        check=field_is(lambda r: sorted(states(r)), sorted(SERVICES)),
        note=lambda r: ", ".join(f"{name} {state}" for name, state in states(r).items()),
    )
    walk.call("traffic statistics", "GET", f"{url}/stats", 200, auth="")
    walk.call("active alerts", "GET", f"{url}/alerts", 200, auth="")
    walk.call(
        "alert rules",
        "GET",
        f"{url}/alerts/rules",
        200,
        auth="",
        check=field_is(lambda r: len(r.json()["data"]), 5),
        note=lambda r: ", ".join(rule["name"] for rule in r.json()["data"]),
    )
    walk.call("the dashboard page", "GET", f"{url}/dashboard", 200, auth="")


def main(argv: list[str] | None = None) -> int:
    """Walk the system; 0 when every step passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for service, (flag, env, port) in SERVICES.items():
        default = os.environ.get(env, f"http://localhost:{port}")
        parser.add_argument(flag, default=default, help=f"{service} (default {default})")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)
    urls = {
        service: getattr(args, flag.removeprefix("--").replace("-", "_")).rstrip("/")
        for service, (flag, _, _) in SERVICES.items()
    }
    with httpx.Client(timeout=args.timeout) as client:
        walk = Walk(urls, client)
        try:
            health(walk)
            user_token = accounts(walk)
            items(walk, user_token)
            cache(walk)
            balancer(walk)
            monitoring(walk)
        except StepFailed as exc:
            print(f"\nstopped: later steps need {exc}")
    print(f"\n{walk.passed} passed, {len(walk.failed)} failed")
    return 1 if walk.failed else 0


if __name__ == "__main__":
    sys.exit(main())
