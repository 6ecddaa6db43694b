"""A stretch of time that must not last longer than a limit, watched by one lazy timer.

A timer made and cancelled per request costs a proxy more than the rest of its bookkeeping;
here start() only notes the time (and arms a timer when none is armed), and the timer, when
it fires, either finds the stretch over, waits out the rest, or calls `expired`.
"""

import asyncio
from collections.abc import Callable


class Stretch:
    """Idle time of a keep-alive connection, or the time a client takes to send a request."""

    __slots__ = ("_expired", "_loop", "_since", "_timer", "seconds")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, expired: Callable[[], None]
    ) -> None:
        self._loop = loop
        self.seconds = seconds
        self._expired = expired
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """The stretch (re)starts now."""
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._since + self.seconds, self._check)

    def stop(self) -> None:
        """No stretch runs now; the timer, when it fires, finds nothing to do."""
        self._since = None

    def cancel(self) -> None:
        """Stop, and drop the timer (the connection is gone)."""
        self._since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._since is None:
            return
        end = self._since + self.seconds
        if end > self._loop.time():
            self._timer = self._loop.call_at(end, self._check)
            return
        self._since = None
        self._expired()
