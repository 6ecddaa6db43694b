"""A steady client load through the gateway during a fault, and what it saw."""

import asyncio
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.conftest import OUTPUT

SUMMARY = OUTPUT / "fault-summary.txt"


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent and answered, its status (0: no answer), its body."""

    kind: str
    sent: float
    done: float
    status: int
    body: str
    limited: bool = False  # the answer carried the gateway's RateLimit header
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx."""
        return 200 <= self.status < 300

    @property
    def envelope_503(self) -> bool:
        """The documented "try again shortly": 503 in the envelope with Retry-After."""
        return self.status == 503 and self.body.startswith('{"status":"error"')


@dataclass
class Traffic:
    """GET one item, GET a page, POST a new item, in turn, from a few workers."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    outcomes: list[Outcome] = field(default_factory=list)
    # id -> nome of every item whose POST was answered 201
    acknowledged: dict[int, str] = field(default_factory=dict)
    pause_after_error: float = 0.05
    _turns: "itertools.count[int]" = field(default_factory=itertools.count)

    async def worker(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """Send requests one after another until told to stop."""
        while not stop.is_set():
            turn = next(self._turns)
            kind = ("get-item", "list", "post")[turn % 3]
            nome = f"{self.tag}-{turn}"
            sent = time.monotonic()
            try:
                if kind == "post":
                    item = {"nome": nome, "descricao": "fault test", "preco": 1.5}
                    response = await http.post("/itens", json=item)
                elif kind == "get-item" and self.acknowledged:
                    some_id = next(reversed(self.acknowledged))
                    response = await http.get(f"/itens/{some_id}")
                else:
                    response = await http.get("/itens", params={"limit": 5, "sort": "-id"})
                status, body = response.status_code, response.text
                limited = "ratelimit" in response.headers
                retry_after = response.headers.get("retry-after")
            except httpx.HTTPError as exc:
                status, body, limited, retry_after = 0, repr(exc), False, None
            done = time.monotonic()
            self.outcomes.append(Outcome(kind, sent, done, status, body, limited, retry_after))
            if kind == "post" and status == 201:
                self.acknowledged[response.json()["data"]["id"]] = nome
            if not 200 <= status < 300:
                await asyncio.sleep(self.pause_after_error)

    def since(self, moment: float) -> list[Outcome]:
        """The requests sent at or after `moment`."""
        return [o for o in self.outcomes if o.sent >= moment]

    def unexpected(self, allowed: frozenset[int] = frozenset()) -> list[Outcome]:
        """Everything that was neither a 2xx, an envelope 503, nor a status in `allowed`."""
        return [o for o in self.outcomes if not (o.ok or o.envelope_503 or o.status in allowed)]

    def recovery(self, back: float, until: float | None = None) -> float | None:
        """Seconds from `back` to the first success after which nothing sent failed (of what
        was answered before `until`, when given)."""
        later = [o for o in self.since(back) if until is None or o.done < until]
        failed = [o.sent for o in later if not o.ok]
        good = [o.done for o in later if o.ok and (not failed or o.sent > max(failed))]
        return min(good) - back if good else None

    def summary(self, case: str, recovery: float | None = None) -> str:
        """One line with the figures a report quotes; also kept in test-output/."""
        codes = Counter(o.status for o in self.outcomes)
        failed = sum(1 for o in self.outcomes if not o.ok)
        line = (
            f"FAULT {case}: sent={len(self.outcomes)} ok={len(self.outcomes) - failed} "
            f"failed={failed} statuses={dict(sorted(codes.items()))}"
        )
        if recovery is not None:
            line += f" recovery={recovery:.2f}s"
        _append(SUMMARY, line)
        return line


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(line + "\n")
