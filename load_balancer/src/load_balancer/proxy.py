"""The forwarding path: plain ASGI, no routing or pydantic work per request."""

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from svc_common.docs import is_docs_path
from svc_common.forwarding.asgi import (
    RelayInterrupted,
    client_address,
    forward,
    may_resend,
    upstream_headers,
)
from svc_common.forwarding.failures import FailureAnswers, UpstreamError
from svc_common.forwarding.headers import route_label

from load_balancer.backends import Backend, BackendPool
from load_balancer.body import ClientGone, RequestBody
from load_balancer.config import BalancerSettings
from load_balancer.retries import Retries
from load_balancer.stats import NO_BACKEND, RETRIES

log = logging.getLogger("load_balancer.proxy")

# The balancer's own endpoints (and its docs); every other path belongs to the backends.
OWN_PATHS = frozenset({"/saude", "/livez", "/readyz", "/metrics", "/status"})
ANSWERS = FailureAnswers(
    unreachable="No backend server available",
    timed_out="Upstream server timed out",
    failed="Upstream server failed",
)


def is_forwarded(path: str) -> bool:
    """Every path that is not the balancer's own (or its docs) belongs to the backends."""
    return path not in OWN_PATHS and not is_docs_path(path)


@dataclass(slots=True)
class Outcome:
    """How a request ended: the backend that answered, or the failure that ended the tries."""

    backend: Backend | None
    tries: int
    failure: UpstreamError | None = None
    client_gone: bool = False

    def log_extra(self) -> dict[str, object]:
        """What the access line adds: the backend, and the tries when there was more than one."""
        extra: dict[str, object] = {"backend": self.backend.name if self.backend else "-"}
        if self.tries > 1:
            extra["tries"] = self.tries
        return extra


def as_try(error: UpstreamError, left: float, timeout: float) -> UpstreamError:
    """A try's timeout is the whole request's deadline when the try had all the time left:
    then there is no retry."""
    if error.reason == "timeout" and left <= timeout:
        error.reason = "deadline"
    return error


def give_up(failure: UpstreamError | None) -> Response:
    """The error for a request no backend answered: 503, 504 or 502."""
    if failure is None or failure.reason == "connect":
        NO_BACKEND.inc()
    return ANSWERS.answer(failure)


class Balancer:
    """Sends each request to a healthy backend and retries it elsewhere when that is safe."""

    def __init__(self, settings: BalancerSettings) -> None:
        self.settings = settings
        self.pool = BackendPool(settings)

    def try_time(self, deadline: float) -> float:
        """How long a try may wait for its answer: TRY_TIMEOUT, or what is left of the
        request's time (deadline, on time.monotonic()) when that is less."""
        return min(self.settings.try_timeout, deadline - time.monotonic())

    def close(self) -> None:
        """Close every backend's connections (lifespan end)."""
        for backend in self.pool.backends:
            backend.close_connections()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request, retrying on other backends as the policy allows."""
        scope["route_template"] = route_label(scope["path"])
        try:
            body = await RequestBody.read(receive, limit=self.settings.retry_buffer_bytes)
        except ClientGone:
            return
        headers = upstream_headers(scope, client_ip=client_address(scope), keep_forwarded=True)
        if self.settings.add_idempotency_keys and not may_resend(scope["method"], headers):
            # The backends promise to store such a request once, however often it arrives.
            headers.append((b"idempotency-key", uuid.uuid4().hex.encode()))
        tried: list[Backend] = []

        async def attempt(backend: Backend, deadline: float) -> int:
            fresh = backend in tried  # sent there before: its connection closed unanswered
            tried.append(backend)
            return await self._try(
                backend, scope, send, body=body, headers=headers, deadline=deadline, fresh=fresh
            )

        try:
            outcome = await self.run(
                scope["method"],
                scope["path"],
                attempt,
                resend_ok=may_resend(scope["method"], headers),
                body=body,
            )
        except RelayInterrupted:
            return  # the answer had started towards the client: all left was to drop it
        if outcome.backend is not None:
            scope["access_log_extra"] = outcome.log_extra()
        elif not outcome.client_gone:
            scope["access_log_extra"] = {"backend": "-"}
            await give_up(outcome.failure)(scope, receive, send)

    async def run(
        self,
        method: str,
        path: str,
        attempt: Callable[[Backend, float], Awaitable[int]],
        *,
        resend_ok: bool,
        body: RequestBody | None = None,
        first: Backend | None = None,
        after: "tuple[Backend, UpstreamError, float] | None" = None,
    ) -> Outcome:
        """Try backends until one answers or the retry policy says stop.

        attempt(backend, deadline) makes one try and returns the status it relayed, or
        raises UpstreamError when no answer reached the client; deadline is on time.monotonic().
        A backend is tried a second time only when no other is left and its connection closed
        before answering.
        first: the backend already picked for the first try; after: (backend, failure,
        deadline) of a first try made elsewhere that failed."""
        tried: list[Backend] = []
        failure: UpstreamError | None = None
        retries: Retries | None = None
        deadline = time.monotonic() + self.settings.upstream_timeout
        if after is not None:
            first, failure, deadline = after
            tried.append(first)
        while True:
            if failure is not None:
                if body is not None and body.client_gone:
                    return Outcome(None, len(tried), client_gone=True)
                log.warning("%s %s: backend %s failed (%s)", method, path, tried[-1].name, failure)
                self.pool.failed(tried[-1], failure.metric_reason, failure.error)
                retries = retries or Retries(resend_ok=resend_ok, body=body)
                if not retries.allow(failure):
                    break
            backend = first if first is not None and not tried else self.pool.pick(tried)
            if backend is None and failure is not None and failure.unanswered_close:
                # No other backend: the one whose connection closed unanswered, once more
                # (on a fresh connection, RFC 9112 9.3.1).
                backend = tried[-1] if tried.count(tried[-1]) == 1 else None
            if backend is None:
                break
            if time.monotonic() >= deadline:
                failure = UpstreamError("deadline", "deadline passed", sent=True)
                break
            if failure is not None:
                RETRIES.labels(failure.reason).inc()
            tried.append(backend)
            try:
                status = await attempt(backend, deadline)
            except UpstreamError as exc:
                failure = exc
            except RelayInterrupted as exc:
                self.pool.failed(backend, "reset", type(exc.__cause__).__name__)
                raise
            else:
                self.answered(backend, status)
                return Outcome(backend, len(tried))
        return Outcome(None, len(tried), failure)

    def answered(self, backend: Backend, status: int) -> None:
        """A try got an answer: a 5xx still counts against the backend."""
        if status >= 500:
            self.pool.failed(backend, "http_5xx", f"HTTP {status}")

    async def _try(
        self,
        backend: Backend,
        scope: Scope,
        send: Send,
        *,
        body: RequestBody,
        headers: list[tuple[bytes, bytes]],
        deadline: float,
        fresh: bool,
    ) -> int:
        """One try on one backend; raises UpstreamError when no answer reached the client."""
        started = backend.try_sent()
        status = None
        try:
            left = deadline - time.monotonic()
            timeout = self.try_time(deadline)
            try:
                status = await forward(
                    self.pool.connections(backend),
                    scope,
                    send,
                    headers=headers,
                    body=body.content(),
                    time_limit=timeout,
                    body_time_limit=left,
                    fresh=fresh,
                )
            except UpstreamError as exc:
                raise as_try(exc, left, timeout) from exc
        finally:
            backend.try_done(started, status)
        return status


class BalancerMiddleware:
    """Hands every path that is not the balancer's own to the Balancer."""

    def __init__(self, app: ASGIApp, *, balancer: Balancer) -> None:
        self.app = app
        self.balancer = balancer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_forwarded(scope["path"]):
            await self.app(scope, receive, send)
        else:
            await self.balancer.handle(scope, receive, send)
