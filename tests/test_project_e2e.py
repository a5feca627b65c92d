"""A tiny end-to-end run of the project's own commands (validate, convert,
train, tune, evaluate, package) on a copy of the repository, with small
step and corpus overrides, through `spacy project run` exactly as a user
would call it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

COPY = ["project.yml", "configs", "code", "scripts", "corpus"]


def run(args, cwd):
    result = subprocess.run([sys.executable, "-m", "spacy", "project", "run", *args], cwd=cwd,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_quick_workflow_and_package(repo_root, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in COPY:
        source = repo_root / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("spacy", "__pycache__"))
        else:
            shutil.copy2(source, project / name)
    overrides = ["--vars.max_steps", "6", "--vars.eval_frequency", "3", "--vars.limit", "6", "--vars.version", "0.0.1"]
    run(["quick", ".", *overrides], project)
    metrics = json.loads((project / "training" / "metrics" / "test.json").read_text())
    text = json.dumps(metrics)
    for key in ("OFFICE", "MANDATE", "rel_micro_f"):
        assert key in text
    tuned = json.loads((project / "training" / "thresholds.json").read_text())
    assert set(tuned["relation_thresholds"]) <= {"HOLDS", "ROLE_IN", "SERVES_AS", "HAS_MANDATE", "PART_OF", "ESTABLISHES"}
    assert 1 <= tuned["mandate_min_tagged"] <= 20
    settings = json.loads((project / "training" / "model-final" / "mandate_spans" / "settings.json").read_text())
    assert settings["min_tagged"] == tuned["mandate_min_tagged"]
    run(["package", ".", *overrides], project)
    wheel = project / "packages" / "vi_decision_ie-0.0.1-py3-none-any.whl"
    assert wheel.exists()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith("METADATA"))
    assert "vi_decision_ie/vi_ie.py" in names
    assert "Requires-Dist: pyvi" in metadata
    assert not any("scripts/" in n for n in names)
