"""The merge gate: the pre-commit hook's entry, run as pre-commit runs it, and the CI workflow.

pre-commit runs a hook as ``shlex.split(entry) + args`` (+ filenames, which this hook does not
take) in the repository's root. The test does exactly that with the installed ``assay``, on a
tiny trained project the gate passes, then on the same project with a policy it fails.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BLOCKED = 3


def gate_hook() -> dict:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "assay-gate"]
    return hook


def run_hook(project_root: Path, args: list[str]) -> subprocess.CompletedProcess:
    hook = gate_hook()
    command = shlex.split(hook["entry"]) + list(hook.get("args", [])) + args
    env = {
        **os.environ,
        # The hook's environment has assay installed; here, this checkout's.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("ASSAY_PARAMS", None)
    return subprocess.run(
        command, cwd=project_root, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_hook_is_a_valid_pre_commit_manifest_entry():
    hook = gate_hook()
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["pass_filenames"] is False and hook["always_run"] is True
    assert shlex.split(hook["entry"])[:2] == ["assay", "release"] and "--check" in hook["entry"]


def test_the_hook_passes_a_release_the_gate_passes_and_blocks_one_it_fails(release_project):
    root = release_project.parent
    passed = run_hook(root, [])
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "release PASSED" in passed.stdout
    assert not (root / "data" / "release").exists()  # --check writes nothing

    params = yaml.safe_load(release_project.read_text())
    params["release"]["max_epsilon"] = 0.01
    (root / "strict.yaml").write_text(yaml.safe_dump(params))
    blocked = run_hook(root, ["--params", "strict.yaml"])
    assert blocked.returncode == BLOCKED, blocked.stdout + blocked.stderr
    assert "blocked by epsilon" in blocked.stdout


def test_the_hook_blocks_where_there_is_no_ledger(tmp_path: Path):
    """Nothing proven, nothing released: a project that never ran is blocked, not passed."""
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    result = run_hook(tmp_path, [])
    assert result.returncode == BLOCKED, result.stdout + result.stderr


def test_the_workflow_runs_the_pipeline_then_the_hooks_gate():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "assay.yml").read_text())
    steps = workflow["jobs"]["gate"]["steps"]
    runs = [s.get("run", "") for s in steps]
    pipeline = next(i for i, r in enumerate(runs) if "assay run" in r)
    gate = next(i for i, r in enumerate(runs) if gate_hook()["entry"] in r)
    assert pipeline < gate
    assert not steps[gate].get("continue-on-error")
