"""Fixtures of the deployment tests."""

import pytest

from tests.deploy.k8s import OVERLAYS, Manifest, render


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    """(name, rendered manifests) of each overlay."""
    return request.param, render(request.param)
