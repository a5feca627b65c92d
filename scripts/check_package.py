"""Install the packaged wheel into a fresh virtual environment and, from a
directory outside the checkout, load it with spacy.load and print the
entities, mandates and relations it finds in a notice.

This is what a researcher does after `pip install`: it fails if the wheel
needs anything from the checkout (custom code, scripts) or misses a
requirement.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import typer
from wasabi import msg

SAMPLE = (
    "UBND tỉnh Nghệ An vừa ban hành Quyết định kiện toàn Ban Chỉ đạo chuyển đổi số tỉnh. "
    "Theo đó, ông Trần Văn Hưng, Chủ tịch UBND tỉnh, làm Trưởng ban; "
    "Giám đốc Sở Khoa học và Công nghệ làm Phó Trưởng ban Thường trực. "
    "Ban Chỉ đạo có nhiệm vụ giúp UBND tỉnh chỉ đạo, điều phối việc thực hiện chuyển đổi số trên địa bàn tỉnh; "
    "kiểm tra, đôn đốc các sở, ngành thực hiện kế hoạch hằng năm.\n"
    "Tổ giúp việc Ban Chỉ đạo đặt tại Sở Khoa học và Công nghệ."
)

PROBE = """
import json, sys, spacy
nlp = spacy.load(sys.argv[1])
doc = nlp(sys.argv[2])
out = {
    "spacy_file": spacy.__file__,
    "pipeline": nlp.pipe_names,
    "ents": [(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents],
    "mandates": [(s.text, s.label_) for s in doc.spans.get("mandates", [])],
    "relations": [(r.head.text, r.label, r.child.text, round(r.score, 3)) for r in doc._.relations],
}
print(json.dumps(out, ensure_ascii=False))
"""


def create_venv(path: Path) -> Path:
    """A fresh virtual environment (no system site-packages) with pip."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / ("Scripts" if os.name == "nt" else "bin") / "python"


def main(
    wheel: Path = typer.Argument(..., help="The packaged wheel"),
    name: str = typer.Option("vi_decision_ie", help="Package name to load"),
    text: str = typer.Option(SAMPLE, help="Notice to analyse"),
    venv_dir: Path = typer.Option(None, help="Where to create the venv (default: a temp dir)"),
) -> None:
    """Install WHEEL into a fresh venv and load it outside the checkout."""
    wheel = wheel.resolve()
    if not wheel.exists():
        msg.fail(f"wheel not found: {wheel}", exits=1)
    with tempfile.TemporaryDirectory() as tmp:
        env_dir = venv_dir or Path(tmp) / "venv"
        python = create_venv(env_dir)
        msg.info(f"Installing {wheel.name} into {env_dir}")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, env=env)
        outside = Path(tmp) / "elsewhere"
        outside.mkdir()
        result = subprocess.run(
            [str(python), "-c", PROBE, name, text], cwd=outside, env=env,
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            msg.fail("loading the installed package failed", result.stderr[-3000:], exits=1)
        out = json.loads(result.stdout.strip().splitlines()[-1])
    if not out["spacy_file"].startswith(str(env_dir)):
        msg.fail(f"spaCy was imported from {out['spacy_file']}, not the fresh venv", exits=1)
    msg.good(f"Loaded {name} in a fresh venv: pipeline {out['pipeline']}")
    msg.table([(t, l, s, e) for t, l, s, e in out["ents"]], header=("entity", "label", "start", "end"), divider=True)
    msg.table(out["mandates"], header=("mandate", "label"), divider=True)
    msg.table(out["relations"], header=("head", "relation", "child", "score"), divider=True)
    if not out["ents"]:
        msg.fail("the packaged pipeline found no entities in the sample notice", exits=1)


if __name__ == "__main__":
    typer.run(main)
