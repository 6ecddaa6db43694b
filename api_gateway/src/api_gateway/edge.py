"""What faces browsers at the edge: CORS from CORS_ORIGINS, and gzip for large answers.

gzip is Starlette's GZipMiddleware on both paths: the lane runs a whole answer through it in
memory (gzipped()), so the two cannot disagree on what is compressed or how it is labelled. A
gzipped answer's strong ETag becomes its gzip form (svc_common.entity_tags), on both paths.
"""

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from svc_common.entity_tags import gzip_form
from svc_common.envelope import error_response
from svc_common.serving.lane import Answer, RawAnswer

GZIP_LEVEL = 6
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "If-Match",
    "If-None-Match",
)
CORS_EXPOSED_HEADERS = (
    "X-Request-ID",
    "X-Total-Count",
    "Location",
    "ETag",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the envelope like every error."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        # Tokens travel in the Authorization header, never in cookies: no credentials mode.
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        message = bytes(response.body).decode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        headers.pop("content-type", None)
        return error_response(400, message, headers=headers)


def accepts_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the client's Accept-Encoding takes gzip."""
    return any(name == b"accept-encoding" and b"gzip" in value for name, value in headers)


def gzip_tagged(send: Send) -> Send:
    """send, with a gzipped answer's ETag in its gzip form: the gzip body is another
    representation, which a strong tag must tell apart."""

    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message["headers"]
            if any(n.lower() == b"content-encoding" and v == b"gzip" for n, v in headers):
                message["headers"] = [
                    (n, gzip_form(v.decode("latin-1")).encode("latin-1"))
                    if n.lower() == b"etag"
                    else (n, v)
                    for n, v in headers
                ]
        await send(message)

    return tagged


class GzipWhenAccepted:
    """Compress answers over min_size for clients that ask; everyone else skips the wrapper."""

    def __init__(self, app: ASGIApp, *, min_size: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=min_size, compresslevel=GZIP_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and accepts_gzip(scope["headers"]):
            await self.gzip(scope, receive, gzip_tagged(send))
            return
        await self.app(scope, receive, send)


def gzip_wanted(request_headers: list[tuple[bytes, bytes]], size: int, min_size: int) -> bool:
    """Whether a whole answer of this size may be gzipped for this request (the lane asks)."""
    return size >= min_size and accepts_gzip(request_headers)


async def gzipped(
    answer: Answer, request_headers: list[tuple[bytes, bytes]], *, min_size: int
) -> Answer:
    """A whole answer as GzipWhenAccepted sends it on the ASGI path (run in memory)."""
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start = {"status": answer.status_code, "headers": list(answer.raw_headers)}
        await send({"type": "http.response.start", **start})
        await send({"type": "http.response.body", "body": bytes(answer.body)})

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def capture(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "headers": request_headers}
    await GZipMiddleware(app, minimum_size=min_size, compresslevel=GZIP_LEVEL)(
        scope, receive, gzip_tagged(capture)
    )
    start, body = sent
    return RawAnswer(start["status"], list(start["headers"]), body["body"])
