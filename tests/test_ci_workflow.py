"""The CI workflow for the platforms this machine cannot run: a file GitHub's runner accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).parents[1] / ".github" / "workflows" / "test.yml"


def test_the_workflow_matches_github_actions_schema():
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_suite_runs_on_linux_windows_and_macos_arm64_for_python_3_10_to_3_13():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] and job["steps"]
    matrix = job["strategy"]["matrix"]
    assert set(matrix["platform"]) == {"ubuntu-latest", "windows-latest", "macos-14"}  # macos-14: arm64
    assert matrix["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert job["strategy"]["fail-fast"] is False
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    assert "--index-url https://download.pytorch.org/whl/cpu" in commands  # CPU torch
    assert '--no-build-isolation "sam2' in commands and job["env"]["SAM2_BUILD_CUDA"] == "0"
    assert "npe2 validate napari-sansa" in commands and "pytest" in commands
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("pyvista/setup-headless-display-action") for u in uses)
