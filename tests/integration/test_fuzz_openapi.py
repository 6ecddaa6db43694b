"""Schemathesis fuzzes every service's OpenAPI on a running stack: no 5xx, nothing off-schema.

For each of the six services, every operation in its `/openapi.json` gets FUZZ_MAX_EXAMPLES
generated requests that fit the schema and as many that do not (wrong types, missing fields,
bodies that are not UTF-8, ...), sent with a valid admin token. Each answer must not be a 5xx,
must have a status code the operation documents, and a body that matches the documented
schema. Examples are derandomized, so a run is repeatable; to dig deeper, raise
FUZZ_MAX_EXAMPLES and set FUZZ_RANDOM=1 for new examples each run. A summary per service
(operations, requests, statuses) is written to test-output/fuzz/.
"""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import OUTPUT, login
from tests.integration.stack import SERVICES, Stack

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") != "1"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Headers that frame the message: a made-up value (a Content-Length of "uv]Wq") is an HTTP
# error that uvicorn answers 400 before any route runs, not an answer of the API's schema.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})
# Operations that end the session of the token they are sent with get a session of their own.
SESSION_ENDING = {"POST /logout"}


@dataclass
class FuzzReport:
    """What one service's fuzzing sent and what went wrong."""

    service: str
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def requests(self) -> int:
        """How many requests were sent in all."""
        return sum(sum(counts.values()) for counts in self.statuses.values())

    def summary(self) -> str:
        """Readable lines: totals, then each operation's answers by status."""
        lines = [
            f"{self.service}: {len(self.statuses)} operations, {self.requests()} requests, "
            f"{len(self.failures)} failures, {self.seconds:.1f} s"
        ]
        for label, counts in sorted(self.statuses.items()):
            spread = ", ".join(f"{code} x{n}" for code, n in sorted(counts.items()))
            lines.append(f"  {label}: {sum(counts.values())} ({spread})")
        return "\n".join(lines)


def _fuzz_operation(cases: SearchStrategy[Case], *, record: Callable[[Case], None]) -> None:
    """Hand FUZZ_MAX_EXAMPLES generated cases to `record`; no shrinking, failures are kept."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Case) -> None:
        record(case)

    run()


def fuzz(base_url: str, service: str, headers_for: Callable[[str], dict[str, str]]) -> FuzzReport:
    """Send every operation of the service's schema its generated examples; collect failures."""
    report = FuzzReport(service)
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=10)
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            label = operation.label
            headers = headers_for(label)

            def record(case: Case, label: str = label, headers: dict[str, str] = headers) -> None:
                if FRAMING_HEADERS & {name.lower() for name in case.headers or {}}:
                    return
                counts = report.statuses.setdefault(label, {})
                try:
                    response = case.call(session=session, headers=headers, timeout=15)
                    counts[response.status_code] = counts.get(response.status_code, 0) + 1
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except (Failure, FailureGroup) as exc:
                    failures = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
                    for failure in failures:
                        key = f"{label}: {failure.title}"
                        report.failures.setdefault(
                            key, f"{failure.message}\n  {case.as_curl_command(headers)}"
                        )
                except requests.RequestException as exc:
                    counts[0] = counts.get(0, 0) + 1
                    key = f"{label}: {type(exc).__name__}"
                    report.failures.setdefault(key, f"{exc}\n  {case.as_curl_command(headers)}")

            for mode in MODES:
                try:
                    _fuzz_operation(operation.as_strategy(generation_mode=mode), record=record)
                except Unsatisfiable:
                    # An operation without parameters or body has no invalid request to make.
                    if mode is GenerationMode.POSITIVE:
                        raise
    report.seconds = time.monotonic() - started
    return report


@pytest.fixture(scope="module")
def fuzz_headers(stack: Stack) -> Iterator[Callable[[str], dict[str, str]]]:
    """Bearer headers from logins of the fuzz's own, never the session's shared tokens."""
    admin = login(stack, "admin", "admin123")

    def headers_for(label: str) -> dict[str, str]:
        token = login(stack, "admin", "admin123") if label in SESSION_ENDING else admin
        return {"Authorization": f"Bearer {token}"}

    yield headers_for
    # The fuzz's session ends with it, as a user's would.
    httpx.post(f"{stack.url('api_gateway')}/logout", headers={"Authorization": f"Bearer {admin}"})


@pytest.mark.parametrize("service", list(SERVICES))
def test_fuzzed_requests_get_no_5xx_and_answers_match_the_schema(
    stack: Stack, service: str, fuzz_headers: Callable[[str], dict[str, str]]
) -> None:
    report = fuzz(stack.url(service), service, fuzz_headers)
    out = OUTPUT / "fuzz"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stack.name}-{service}.txt").write_text(report.summary() + "\n")
    print(report.summary())
    assert report.statuses, f"{service}: the schema has no operations"
    failures = "\n".join(f"{key}\n  {detail}" for key, detail in report.failures.items())
    assert not report.failures, f"{service}:\n{failures}"
