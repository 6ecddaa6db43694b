"""The Postman collection the README promises, run by newman against a running stack."""

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import IN_CI, OUTPUT
from tests.integration.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "Arquitetura_Distribuida.postman_collection.json"
PACKAGE = ROOT / "tests" / "postman"
# Outside the clone, keyed by the lock file, so a fresh clone on the same machine starts warm.
CACHE = Path(os.environ.get("NEWMAN_CACHE", Path.home() / ".cache" / "arquitetura" / "newman"))
URL_VARIABLES = {
    "baseUrl": "api_gateway",
    "balancerUrl": "load_balancer",
    "serverUrl": "server",
    "server2Url": "server2",
    "cacheUrl": "cache",
    "monitorUrl": "monitoring",
}


def _requests(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        if "request" in item:
            yield item
        yield from _requests(item.get("item", []))


@pytest.fixture(scope="session")
def newman() -> Path:
    """newman as pinned by tests/postman/package-lock.json, installed once with `npm ci`."""
    npm = shutil.which("npm")
    if npm is None:
        message = "npm not found: newman cannot be installed"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: a missing dependency is a failure)")
        pytest.skip(message)
    lock = (PACKAGE / "package-lock.json").read_bytes()
    home = CACHE / hashlib.sha256(lock).hexdigest()[:16]
    binary = home / "node_modules" / ".bin" / "newman"
    if not binary.exists():
        home.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PACKAGE / name, home / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=home,
            check=True,
            timeout=600,
        )
    return binary


def test_the_collection_covers_every_service_and_captures_the_login_token() -> None:
    collection = json.loads(COLLECTION.read_text())
    requests = list(_requests(collection["item"]))
    hosts = {r["request"]["url"]["host"][0].strip("{}") for r in requests}
    assert hosts == set(URL_VARIABLES)
    assert all(
        any(
            e["listen"] == "test" and "pm.test(" in "\n".join(e["script"]["exec"])
            for e in r["event"]
        )
        for r in requests
    ), "every request has assertions"
    assert collection["auth"]["bearer"][0]["value"] == "{{token}}"
    login = next(r for r in requests if r["name"] == "POST /login (admin)")
    script = "\n".join(login["event"][-1]["script"]["exec"])
    assert 'pm.collectionVariables.set("token", data.access_token)' in script


def test_the_collection_checks_balancing_with_identidade_and_scrapes_with_the_token() -> None:
    collection = json.loads(COLLECTION.read_text())
    folder = next(f for f in collection["item"] if f["name"] == "Testes de Balanceamento")
    urls = [r["request"]["url"]["raw"] for r in _requests(folder["item"])]
    assert urls == ["{{baseUrl}}/identidade"] * 3
    scrapes = [
        r for r in _requests(collection["item"]) if r["request"]["url"]["path"] == ["metrics"]
    ]
    assert len(scrapes) == len(URL_VARIABLES)
    assert all(r["request"]["auth"]["bearer"][0]["value"] == "{{metricsToken}}" for r in scrapes)


def test_newman_runs_the_collection_against_the_stack_with_no_failure(
    stack: Stack, newman: Path
) -> None:
    report = OUTPUT / f"newman-{stack.name}.json"
    overrides = [
        arg
        for variable, service in URL_VARIABLES.items()
        for arg in ("--env-var", f"{variable}={stack.url(service)}")
    ]
    overrides += ["--env-var", f"metricsToken={stack.metrics_token}"]
    result = subprocess.run(
        [
            str(newman),
            "run",
            str(COLLECTION),
            *overrides,
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--disable-unicode",
            "--color",
            "off",
            "--timeout-request",
            "15000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert report.exists(), result.stdout + result.stderr
    run = json.loads(report.read_text())["run"]
    stats = run["stats"]
    failures = [
        f"{f['source']['name']}: {f['error']['name']}: {f['error']['message']}"
        for f in run["failures"]
    ]
    print(
        f"newman ({stack.name}): {stats['requests']['total']} requests, "
        f"{stats['assertions']['total']} assertions, {stats['assertions']['failed']} failed"
    )
    assert failures == [], "\n".join(failures) + "\n" + result.stdout[-5000:]
    assert result.returncode == 0, result.stdout[-5000:]
    expected = len(list(_requests(json.loads(COLLECTION.read_text())["item"])))
    assert stats["requests"]["total"] == expected
    assert stats["requests"]["failed"] == 0
    assert stats["assertions"]["failed"] == 0
