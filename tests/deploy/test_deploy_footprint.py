"""What `make up` installs, and the licence every package states."""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.deploy.tools import REPO, missing

MEMBERS = ("common", "api_gateway", "load_balancer", "server", "cache", "monitoring")
SERVICES = ("api_gateway", "load_balancer", "server", "cache", "monitoring")


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _sync_run_flags() -> list[str]:
    """The flags of `make up`'s sync (the Makefile's sync-run recipe)."""
    recipe = re.search(r"^sync-run:.*\n\t\$\(UV\) (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has no sync-run recipe"
    return [flag for flag in recipe.group(1).split() if flag != "--inexact"]


def test_make_up_installs_the_services_and_supervisor_and_no_dev_tool(tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        missing("uv")
    venv = tmp_path / "venv"
    env = os.environ | {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv, *_sync_run_flags(), "-q"], cwd=REPO, env=env, check=True, timeout=600)
    imports = ", ".join(["supervisor", *(f"{service}.main" for service in SERVICES)])
    subprocess.run([venv / "bin" / "python", "-c", f"import {imports}"], check=True, timeout=120)
    installed = {path.name.split("-")[0].lower() for path in venv.glob("lib/*/site-packages/*")}
    assert not installed & {"pytest", "mypy", "ruff", "playwright", "schemathesis"}
    full = REPO / ".venv"
    if full.exists():
        # What `make up` brings is a fraction of what the whole dev environment holds.
        print(f"make up: {_size(venv) / 1e6:.0f} MB, make sync: {_size(full) / 1e6:.0f} MB")
        assert _size(venv) < _size(full) / 3


@pytest.mark.parametrize("member", ["", *MEMBERS])
def test_every_package_states_the_mit_licence(member: str) -> None:
    project = tomllib.loads((REPO / member / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
