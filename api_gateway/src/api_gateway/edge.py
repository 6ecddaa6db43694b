"""What faces browsers at the edge: CORS from CORS_ORIGINS, and gzip for large answers."""

import gzip

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from svc_common.envelope import error_response

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


def gzip_body(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The fast lane's answer gzipped as GZipMiddleware would: unless encoded already, and
    varying on Accept-Encoding (headers gets both)."""
    if any(name == b"content-encoding" for name, _ in headers):
        return body
    headers.append((b"content-encoding", b"gzip"))
    headers.append((b"vary", b"Accept-Encoding"))
    return gzip.compress(body, compresslevel=GZIP_LEVEL)


class GzipWhenAccepted:
    """Compress answers over min_size for clients that ask; everyone else skips the wrapper."""

    def __init__(self, app: ASGIApp, *, min_size: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=min_size, compresslevel=GZIP_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and accepts_gzip(scope["headers"]):
            await self.gzip(scope, receive, send)
            return
        await self.app(scope, receive, send)
