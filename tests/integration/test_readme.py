"""The README's manual curl flow works verbatim (only the ports are the test's own)."""

import re
import subprocess
from pathlib import Path

from tests.integration.stack import Stack

README = Path(__file__).resolve().parents[2] / "README.md"
SEED_PORTS = {8000: "api_gateway", 8001: "load_balancer", 8002: "server", 8003: "server2"}


def readme_flow() -> str:
    """The bash block under '## Try it'."""
    section = README.read_text().split("## Try it", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README has no bash block under '## Try it'"
    return match.group(1)


def run_readme_flow(ports: dict[str, int]) -> None:
    """Run the flow against services on these ports, and check what it printed."""
    script = readme_flow()
    for port, service in SEED_PORTS.items():
        script = script.replace(f"localhost:{port}", f"127.0.0.1:{ports[service]}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"status":"success"') >= 7, result.stdout
    assert '"nome":"Item Teste"' in result.stdout
    assert '"preco":99.99' in result.stdout
    assert '"message":"Answered by server' in result.stdout


def test_readme_curl_flow_runs_verbatim(stack: Stack) -> None:
    run_readme_flow(stack.ports)
