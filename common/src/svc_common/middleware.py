"""Plain ASGI middleware on every request: request id, metrics, one access-log line."""

import logging
import random
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from svc_common import request_headers, tracing
from svc_common.logging import log_access, request_id_var
from svc_common.metrics import observe
from svc_common.tracing import Hop

# Polled every few seconds by monitors and probes: logged only at DEBUG to keep logs readable.
QUIET_PATHS = frozenset({"/saude", "/livez", "/readyz", "/metrics"})

# A client-supplied id is kept only if it cannot smuggle anything into logs or headers.
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# A request id correlates log lines; it guards nothing, so it needs no system call per
# request (secrets asks the kernel each time). Seeded from the OS once, per process.
_ids = random.Random(secrets.randbits(64))  # noqa: S311


def request_id_or_new(sent: bytes | None) -> str:
    """The X-Request-ID a request sent (request_headers.scan) when it is safe, else a fresh
    one."""
    if sent is not None and _SAFE_REQUEST_ID.fullmatch(sent):
        return sent.decode()
    # 128 random bits as 32 hex digits, like uuid4().hex without building a UUID.
    return f"{_ids.getrandbits(128):032x}"


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """request_id_or_new() of a request with these headers."""
    return request_id_or_new(request_headers.scan(headers)[1])


def finished(
    method: str,
    path: str,
    route: str,
    status: int,
    seconds: float,
    *,
    log_extra: dict[str, object] | None,
    access_log: bool,
    request_id: str | None = None,
    hop: Hop | None = None,
) -> None:
    """What every request leaves behind, on the ASGI path and the fast lane: its metrics, its
    span's end and its access line (request_id, hop: when called outside the request's
    context)."""
    observe(method, route, status, seconds)
    if hop is not None and hop.span is not None:  # an unsampled hop has nothing to report
        tracing.finish(hop, method, route, status, log_extra)
    if access_log:
        log_access(
            logging.DEBUG if path in QUIET_PATHS else logging.INFO,
            f"{method} {path} {status} {seconds * 1000:.1f}ms",
            log_extra,
            request_id,
            hop.traceparent if hop is not None else None,
        )


def served_by_headers(name: str | None) -> tuple[tuple[bytes, bytes], ...]:
    """X-Served-By, which every answer of a server instance carries (both paths)."""
    return ((b"x-served-by", name.encode()),) if name else ()


def trace_start(
    method: str, path: str, route: str, traceparent: bytes | None, tracestate: bytes | None
) -> Hop | None:
    """The request's hop of its trace when traces are on; polled paths get none (a probe every
    few seconds would bury the traces people look for)."""
    if not tracing.ENABLED or path in QUIET_PATHS:
        return None
    return tracing.begin(method, path, route, traceparent, tracestate)


def route_template(scope: Scope) -> str:
    """The matched route's template, so metrics labels stay bounded."""
    route = scope.get("route")
    template = getattr(route, "path", None) or scope.get("route_template")
    return template if isinstance(template, str) else "unmatched"


class RequestContextMiddleware:
    """Tags each request with an id, echoes it, and records metrics and an access line."""

    def __init__(self, app: ASGIApp, *, served_by: str | None = None, access_log: bool = True):
        self.app = app
        self.extra_headers = served_by_headers(served_by)
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _, sent_id, traceparent, tracestate = request_headers.scan(scope["headers"])
        request_id = request_id_or_new(sent_id)
        token = request_id_var.set(request_id)
        id_header = (b"x-request-id", request_id.encode())
        extra_headers = self.extra_headers
        # A lane request handed over (TO_ASGI) brings the span the lane started.
        hop = scope.get(tracing.SCOPE_KEY) or trace_start(
            scope["method"], scope["path"], "unmatched", traceparent, tracestate
        )
        trace_token = None
        if hop is not None:
            trace_token = tracing.attach(hop)
            extra_headers += hop.answer
        status = 500
        start = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0] != b"x-request-id"]
                headers.append(id_header)
                headers.extend(extra_headers)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            finished(
                scope["method"],
                scope["path"],
                route_template(scope),
                status,
                time.perf_counter() - start,
                # A proxy adds what it knows, e.g. the balancer's backend.
                log_extra=scope.get("access_log_extra"),
                access_log=self.access_log,
                hop=hop,
            )
            if trace_token is not None:
                tracing.detach(trace_token)
            request_id_var.reset(token)
