"""The app factory's process-wide settings: what a served app changes in the collector."""

import gc
import resource
import subprocess
import sys

from fastapi.testclient import TestClient
from svc_common.app import create_app
from svc_common.serving.tuning import YOUNG_GC_THRESHOLD
from svc_common.settings import ServiceSettings


def test_an_app_started_outside_serve_leaves_the_garbage_collector_alone() -> None:
    frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    app = create_app(ServiceSettings(service_name="t", porta=1), title="t", description="t")
    with TestClient(app) as client:
        assert client.get("/saude").status_code == 200
    # A test's app goes away with the test: freezing it would keep it for the whole run.
    assert gc.get_freeze_count() == frozen
    assert gc.get_threshold() == threshold


def test_a_served_process_freezes_its_start_up_and_collects_young_objects_less_often() -> None:
    # In a child process: freezing is for the rest of the process, which must not be pytest's.
    script = (
        "import gc\n"
        "from svc_common.serving.tuning import settle_garbage_collector\n"
        "before = gc.get_freeze_count()\n"
        "settle_garbage_collector()\n"
        "print(before, gc.get_freeze_count(), gc.get_threshold()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, young = (int(n) for n in out)
    assert before == 0
    assert after > 1000  # the modules and objects start-up built
    assert young == YOUNG_GC_THRESHOLD


def _file_limit_in_a_shell(limits: str, connections: int) -> subprocess.CompletedProcess[str]:
    # In a child shell: the limits are the process's, which must not be pytest's.
    script = (
        "from svc_common.serving.tuning import open_file_limit\n"
        f"print(open_file_limit({connections}))\n"
    )
    return subprocess.run(
        ["bash", "-c", f'{limits} && exec "$0" -c "$1"', sys.executable, script],
        capture_output=True,
        text=True,
        check=True,
    )


def test_a_served_process_raises_its_open_file_limit_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    result = _file_limit_in_a_shell("ulimit -Sn 1024", connections=100)
    assert int(result.stdout) == (1124 if hard == resource.RLIM_INFINITY else hard)
    assert "MAX_CONNECTIONS" not in result.stderr


def test_a_hard_limit_below_the_connection_cap_is_said_at_start() -> None:
    result = _file_limit_in_a_shell("ulimit -Sn 1024 && ulimit -Hn 4096", connections=10_000)
    assert int(result.stdout) == 4096
    assert "leaves no room for MAX_CONNECTIONS=10000" in result.stderr
