"""A steady load of reads and writes through the gateway, and a watch on the balancers, from a
container on the stack's network (tests/swarm starts it; the standard library only).

Every balancer's GET /status goes to OUT/status.jsonl from the start; the load, once OUT/go
appears, with every request in OUT/requests.jsonl. Once OUT/stop appears the load stops, the
writes are checked, and OUT/summary.json is written.

A client may send a request once more on a new connection when a kept-alive one closed before
any byte of its answer came: for an idempotent request or one with an Idempotency-Key, as
RFC 9110 9.2.2 allows and Go's net/http, urllib3 and browsers do. That is the only retry here;
every other error, and any answer but the expected status, is a failed request.
"""

import http.client
import json
import os
import random
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

GATEWAY = os.environ.get("GATEWAY_HOST", "api_gateway")
BALANCERS = os.environ.get("BALANCERS_HOST", "tasks.load_balancer")
SERVERS = os.environ.get("SERVERS_HOST", "tasks.server")
RATE = float(os.environ.get("RATE", "40"))  # requests a second, all workers together
WORKERS = int(os.environ.get("WORKERS", "8"))
RUN = os.environ.get("RUN", uuid.uuid4().hex[:8])
OUT = Path(os.environ.get("OUT", "/out"))
TIMEOUT = 15.0
# A kept-alive connection closed before an answer: the request never reached the application.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Client:
    """One kept-alive connection to the gateway, opened again when it closes."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host, self.port, self.token = host, port, token
        self.connection: http.client.HTTPConnection | None = None
        self.reused = False
        self.reused_before = False

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any, bool]:
        """(status, headers, decoded body, whether it was sent again on a new connection)."""
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        sent |= {"Content-Type": "application/json"} if data else {}
        may_resend = method in {"GET", "HEAD", "PUT", "DELETE"} or "Idempotency-Key" in sent
        try:
            return (*self._once(method, path, data, sent), False)
        except STALE:
            if not (self.reused_before and may_resend):
                raise
        return (*self._once(method, path, data, sent), True)

    def _once(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            self.reused = False
        self.reused_before = self.reused
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            raw = response.read()
        except BaseException:
            self.close()
            raise
        self.reused = True
        if response.will_close:
            self.close()
        answer = {k.lower(): v for k, v in response.getheaders()}
        decoded = json.loads(raw) if raw and "json" in answer.get("content-type", "") else None
        return response.status, answer, decoded

    def close(self) -> None:
        """Drop the connection; the next request opens another."""
        if self.connection is not None:
            self.connection.close()
        self.connection = None


class Load:
    """The workers, the balancer watch, and what they saw."""

    def __init__(self) -> None:
        self.token = ""  # once logged in
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict[int, str] = {}  # item id -> its name
        self.requests = (OUT / "requests.jsonl").open("a", buffering=1)
        self.status = (OUT / "status.jsonl").open("a", buffering=1)

    def work(self, worker: int) -> None:
        """Requests at this worker's share of RATE until told to stop."""
        client = Client(GATEWAY, 8000, self.token)
        pause = WORKERS / RATE
        due = time.monotonic() + random.random() * pause
        while not self.stop.is_set():
            time.sleep(max(0.0, due - time.monotonic()))
            # A worker held up (a busy machine) does not catch up in a burst.
            due = max(due + pause, time.monotonic())
            self.one(client, f"{RUN}-{worker}-{uuid.uuid4().hex[:12]}")
        client.close()

    def one(self, client: Client, name: str) -> None:
        """A write, a read of an acknowledged write, or a page of the list."""
        roll = random.random()
        with self.lock:
            known = list(self.acked) if roll >= 0.3 else []
        method, path, body, headers, expected = "GET", "/itens?limit=20", None, None, 200
        if roll < 0.3:
            body = {"nome": name, "descricao": "swarm test", "preco": 1.5}
            method, path, headers, expected = "POST", "/itens", {"Idempotency-Key": name}, 201
        elif roll < 0.75 and known:
            path = f"/itens/{random.choice(known)}"
        started = time.time()
        status, error, retried, by, item_id = 0, None, False, None, None
        try:
            status, answer, decoded, retried = client.request(method, path, body, headers)
            by = answer.get("x-served-by")
            if method == "POST" and status == expected:
                item_id = int(decoded["data"]["id"])
                with self.lock:
                    self.acked[item_id] = name
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        record = {"t": started, "d": round(time.time() - started, 4), "m": method}
        record |= {"p": path.split("?")[0], "s": status, "ok": status == expected, "e": error}
        line = json.dumps(record | {"retried": retried, "by": by, "id": item_id}) + "\n"
        with self.lock:
            self.requests.write(line)

    def watch(self) -> None:
        """Four times a second, a line: where the servers' name resolves to, and each
        balancer's backends (url -> state), or why it did not answer."""
        while not self.stop.is_set():
            views: dict[str, Any] = {}
            started = time.time()
            servers, addresses = lookup(SERVERS, 8002), lookup(BALANCERS, 8001)
            for address in addresses if isinstance(addresses, list) else []:
                client = Client(address, 8001)
                try:
                    _, _, decoded, _ = client.request("GET", "/status")
                    views[address] = {b["url"]: b["state"] for b in decoded["data"]["backends"]}
                except (OSError, http.client.HTTPException, ValueError, TypeError) as exc:
                    views[address] = f"{type(exc).__name__}: {exc}"
                finally:
                    client.close()
            line = {"t": started, "servers": servers, "balancers": addresses, "views": views}
            self.status.write(json.dumps(line) + "\n")
            time.sleep(0.25)

    def verify(self) -> dict[str, Any]:
        """Every acknowledged write read back by its id, and found in the listing of the
        run's items, counted by name (a write stored twice shows as a name seen twice)."""
        client = Client(GATEWAY, 8000, self.token)
        lost = []
        for item_id, name in sorted(self.acked.items()):
            status, _, decoded = read(client, f"/itens/{item_id}")
            if status != 200 or decoded["data"]["nome"] != name:
                lost.append(item_id)
        listed: dict[int, str] = {}
        names: dict[str, int] = {}
        path: str | None = f"/itens?q={RUN}&limit=500"
        while path:
            status, answer, decoded = read(client, path)
            if status != 200:
                raise SystemExit(f"GET {path}: {status} {decoded}")
            for item in decoded["data"]:
                listed[int(item["id"])] = item["nome"]
                names[item["nome"]] = names.get(item["nome"], 0) + 1
            path = next_page(answer.get("link", ""))
        lost += [i for i, name in self.acked.items() if listed.get(i) != name and i not in lost]
        return {
            "acknowledged_writes": len(self.acked),
            "writes_lost": len(lost),
            "lost_ids": lost,
            "stored_twice": sum(n - 1 for n in names.values() if n > 1),
            "stored_unacknowledged": len(set(names) - set(self.acked.values())),
        }


def read(client: Client, path: str) -> tuple[int, dict[str, str], Any]:
    """A GET, waiting as told when one user's reads outrun the rate limit (429)."""
    while True:
        status, answer, decoded, _ = client.request("GET", path)
        if status != 429:
            return status, answer, decoded
        time.sleep(float(answer.get("retry-after", "1")))


def lookup(name: str, port: int) -> list[str] | str:
    """The addresses a name resolves to, or why it does not."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(name, port)})
    except OSError as exc:
        return str(exc)


def next_page(link: str) -> str | None:
    """The path and query of a Link header's rel="next", if it has one."""
    if 'rel="next"' not in link:
        return None
    url = urlsplit(link.split(";", maxsplit=1)[0].strip().strip("<>"))
    return f"{url.path}?{url.query}" if url.query else url.path


def login(username: str, password: str) -> str:
    """An access token, once the gateway answers (the stack may still be starting)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            body = {"username": username, "password": password}
            status, _, decoded, _ = Client(GATEWAY, 8000).request("POST", "/login", body)
            if status == 200:
                return str(decoded["data"]["access_token"])
        except (OSError, http.client.HTTPException):
            status = 0
        if time.monotonic() > deadline:
            raise SystemExit(f"no login through the gateway (last status {status})")
        time.sleep(1)


def main() -> None:
    """The watch at once; the load from OUT/go on; at OUT/stop, the writes checked."""
    load = Load()
    threads = [threading.Thread(target=load.watch)]
    threads[0].start()
    while not (OUT / "go").exists():
        time.sleep(0.2)
    load.token = login(os.environ["ADMIN_USERNAME"], os.environ["ADMIN_PASSWORD"])
    threads += [threading.Thread(target=load.work, args=(n,)) for n in range(WORKERS)]
    for thread in threads[1:]:
        thread.start()
    (OUT / "started").touch()
    while not (OUT / "stop").exists():
        time.sleep(0.2)
    load.stop.set()
    for thread in threads:
        thread.join()
    (OUT / "summary.json").write_text(json.dumps(load.verify(), indent=2))


if __name__ == "__main__":
    main()
