"""The GitHub Actions workflow: valid against the workflow schema, and the gate sees every job."""

import yaml

from tests.deploy.tools import REPO, run, venv_tool

WORKFLOW = REPO / ".github/workflows/ci.yml"


def test_workflow_matches_the_github_schema() -> None:
    tool = venv_tool("check-jsonschema")
    run(tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))
    run(tool, "--builtin-schema", "custom.github-workflows-require-timeout", str(WORKFLOW))


def test_gate_job_waits_for_every_other_job() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    gate = jobs.pop("gate")
    assert set(gate["needs"]) == set(jobs)
    assert gate["if"] == "always()", "a skipped or failed job must fail the gate, not skip it"
