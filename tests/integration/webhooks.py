"""A webhook receiver for alert notifications (the monitor's and Alertmanager's), and a poll."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.1)


class Receiver:
    """A webhook receiver on a free port; it can refuse the next few POSTs with a 503."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        self.refuse_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    refuse = receiver.refuse_next > 0
                    if refuse:
                        receiver.refuse_next -= 1
                        receiver.refused += 1
                    else:
                        receiver.bodies.append(body)
                self.send_response(503 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def reset(self, refuse_next: int = 0) -> None:
        """Forget what arrived so far."""
        with self.lock:
            self.bodies.clear()
            self.refused, self.refuse_next = 0, refuse_next

    def find(self, status: str, alertname: str, service: str) -> dict[str, Any] | None:
        """The first notification with this status for this alert and service."""
        with self.lock:
            for body in self.bodies:
                labels = body["commonLabels"]
                if (body["status"], labels["alertname"], labels.get("service")) == (
                    status,
                    alertname,
                    service,
                ):
                    return body
        return None


@contextmanager
def serving_receiver() -> Iterator[Receiver]:
    """A Receiver serving from a thread until the block ends."""
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
