"""The import rules of the house: read from the source, so a new import that breaks one fails."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api_gateway", "load_balancer", "server", "cache", "monitoring")
PACKAGES = {"svc_common": ROOT / "common/src/svc_common"} | {
    name: ROOT / name / "src" / name for name in SERVICES
}


def _module(package: str, path: Path) -> str:
    parts = path.relative_to(PACKAGES[package]).with_suffix("").parts
    return ".".join((package, *parts)).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (not those under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


GRAPH = {
    _module(package, path): _imports(path)
    for package, folder in PACKAGES.items()
    for path in folder.rglob("*.py")
    if "migrations" not in path.parts
}


def _importers(prefix: str) -> set[str]:
    return {name for name, imports in GRAPH.items() if any(i.startswith(prefix) for i in imports)}


def test_only_the_protocol_module_knows_uvicorn_s_internals() -> None:
    assert _importers("uvicorn.protocols") == {"svc_common.serving.protocol"}


def test_forwarding_and_serving_do_not_import_each_other() -> None:
    assert not {
        n for n in _importers("svc_common.serving") if n.startswith("svc_common.forwarding")
    }
    assert not {
        n for n in _importers("svc_common.forwarding") if n.startswith("svc_common.serving")
    }


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_svc_common_and_never_another_service(service: str) -> None:
    others = tuple(f"{other}." for other in SERVICES if other != service) + tuple(
        other for other in SERVICES if other != service
    )
    offenders = {
        (name, i)
        for name, imports in GRAPH.items()
        if name.startswith(service + ".") or name == service
        for i in imports
        if i.startswith(others) and i.split(".")[0] != service
    }
    assert not offenders


def test_svc_common_has_no_import_cycle() -> None:
    inside = {n: {i for i in GRAPH[n] if i in GRAPH} for n in GRAPH if n.startswith("svc_common")}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(inside[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(inside):
        visit(name, [])
