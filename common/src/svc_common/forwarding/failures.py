"""One taxonomy of upstream failures, and the error answer each one gets."""

import errno
from dataclasses import dataclass

from starlette.responses import Response

from svc_common.envelope import error_response

# A reset with our request still unread in the upstream's buffer: it never saw the request
# (the kernel answers RST, not FIN, when a process dies or closes with unread data).
UNREAD_RESETS = frozenset({errno.ECONNRESET, errno.EPIPE})


class UpstreamError(Exception):
    """A try that got no complete answer.

    reason: connect (nothing reached the upstream), reset (the connection broke or closed),
    timeout (no answer within the try's time), deadline (the whole request's time is spent)
    or oversize (an answer bigger than the lane's client holds: the ASGI path streams it).
    sent: whether the upstream may have seen the request. answered: whether any byte of the
    answer had arrived (such a request is never sent again).
    """

    def __init__(self, reason: str, error: str, *, sent: bool, answered: bool = False) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error
        self.sent = sent
        self.answered = answered

    @property
    def unanswered_close(self) -> bool:
        """The connection closed before any of the answer came: RFC 9112 section 9.3.1 lets
        an idempotent request be sent again on a new connection."""
        return self.reason == "reset" and not self.answered

    @property
    def metric_reason(self) -> str:
        """The reason as the backend metrics count it."""
        return "timeout" if self.reason == "deadline" else self.reason


@dataclass(frozen=True, slots=True)
class FailureAnswers:
    """What a proxy tells its client when no upstream answered (messages differ per hop)."""

    unreachable: str
    timed_out: str
    failed: str

    def answer(
        self, failure: UpstreamError | None, headers: dict[str, str] | None = None
    ) -> Response:
        """503 with Retry-After when nothing was reached (or nothing was there to try), 504
        when out of time, 502 when the upstream failed."""
        headers = dict(headers or {})
        if failure is None or failure.reason == "connect":
            headers["Retry-After"] = "1"
            return error_response(503, self.unreachable, headers=headers)
        if failure.reason in {"timeout", "deadline"}:
            return error_response(504, self.timed_out, headers=headers)
        return error_response(502, self.failed, headers=headers)
