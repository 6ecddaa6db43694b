"""When a failed try may go to another backend."""

from svc_common.forwarding.failures import UpstreamError

from load_balancer.body import RequestBody

# Decided per failure:
# - nothing reached the backend (connect refused, unreachable, connect timeout): any method
#   goes to the next backend, as long as its body can still be sent again;
# - the request went out but no answer came back (reset, closed, per-try timeout): only an
#   idempotent method, or a request carrying an `Idempotency-Key`, goes once more elsewhere;
#   a POST whose bytes reached a backend is never sent twice (ADD_IDEMPOTENCY_KEYS gives
#   every POST and PATCH a key, for backends that honor it); the resend goes to the next
#   backend, or to the same one on a fresh connection when its connection closed before
#   answering and no other is left (RFC 9112 9.3.1);
# - once the response has started towards the client nothing is retried.


class Retries:
    """What one request may still be retried for, after a try failed."""

    def __init__(self, *, resend_ok: bool, body: RequestBody | None = None) -> None:
        self.resend_ok = resend_ok
        self.body = body  # None: no body, nothing that could not be sent again
        self.resent = False

    def allow(self, failure: UpstreamError) -> bool:
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
