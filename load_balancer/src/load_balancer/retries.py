"""When a failed try may go to another backend."""

import errno

import aiohttp

from load_balancer.body import RequestBody

# Decided per failure:
# - nothing reached the backend (connect refused, unreachable, connect timeout): any method
#   goes to the next backend, as long as its body can still be sent again;
# - the request went out but no answer came back (reset, closed, per-try timeout): only an
#   idempotent method, or a request carrying an `Idempotency-Key`, goes once more elsewhere;
#   a POST whose bytes reached a backend is never sent twice (ADD_IDEMPOTENCY_KEYS gives
#   every POST and PATCH a key, for backends that honor it);
# - once the response has started towards the client nothing is retried.

# RFC 9110 section 9.2.2.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class TryFailed(Exception):
    """One try went wrong; `sent` says whether the request may have reached the backend."""

    def __init__(self, reason: str, error: str, *, sent: bool) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error
        self.sent = sent

    @property
    def metric_reason(self) -> str:
        """The failure reason as the backend metrics count it."""
        return "timeout" if self.reason == "deadline" else self.reason


# A reset with no answer: the backend closed with our request unread in its socket buffer
# (the kernel answers RST, not FIN, when a process dies or closes with unread data).
_UNREAD_RESETS = frozenset({errno.ECONNRESET, errno.EPIPE})


def classify(exc: BaseException) -> TryFailed:
    """Classify an aiohttp failure by whether the backend can have seen the request."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return TryFailed("connect", name, sent=False)
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in _UNREAD_RESETS:
        return TryFailed("reset", f"{name}: {exc.strerror}", sent=False)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return TryFailed("timeout", name, sent=True)
    if isinstance(exc, TimeoutError):
        return TryFailed("deadline", name, sent=True)
    return TryFailed("reset", name, sent=True)


def may_resend(method: str, headers: list[tuple[str, str]]) -> bool:
    """Whether sending the request twice is harmless: an idempotent method or a keyed one."""
    return method in IDEMPOTENT_METHODS or any(
        name.lower() == "idempotency-key" for name, _ in headers
    )


class Retries:
    """What one request may still be retried for, after a try failed."""

    def __init__(self, *, resend_ok: bool, body: RequestBody | None = None) -> None:
        self.resend_ok = resend_ok
        self.body = body  # None: no body, nothing that could not be sent again
        self.resent = False

    def allow(self, failure: TryFailed) -> bool:
        """Whether to try the next backend after this failure."""
        if failure.reason == "deadline" or (self.body is not None and not self.body.replayable):
            return False
        if not failure.sent:
            return True
        # It reached the backend: resend once, and only if doing it twice is harmless.
        if self.resent or not self.resend_ok:
            return False
        self.resent = True
        return True
