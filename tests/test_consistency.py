"""Consistency report: label conflicts and missed occurrences."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import consistency  # noqa: E402

META = {"source": "written", "genre": "news", "province": "Long An"}
#: "Sở Y tế" is OFFICE in d1, ROLE in d2, unannotated in d3 (inside
#: "Giám đốc Sở Y tế", after a no-break space).
DOCS = [
    {"id": "d1", "text": "Sở Y tế ban hành kế hoạch.", "meta": META,
     "spans": [{"id": "s1", "start": 0, "end": 7, "label": "OFFICE"}], "relations": []},
    {"id": "d2", "text": "Sở Y tế là cơ quan chủ trì.", "meta": META,
     "spans": [{"id": "s1", "start": 0, "end": 7, "label": "ROLE"}], "relations": []},
    {"id": "d3", "text": "Giám đốc Sở\u00a0Y tế ký. Sở Y tếx không khớp.", "meta": META,
     "spans": [], "relations": []},
]


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DOCS), encoding="utf8")
    return path


def test_canonical_surface_and_pattern():
    assert consistency.canonical_surface(" Sở\u00a0Y \n tế ") == "Sở Y tế"
    pattern = consistency.surface_pattern("Sở Y tế")
    assert [m.start() for m in pattern.finditer(DOCS[2]["text"])] == [9]  # not "Sở Y tếx"
    assert not pattern.search("sở Y tế")  # case-sensitive


def test_label_conflict_reported():
    conflicts = consistency.label_conflicts(DOCS)
    assert [c.surface for c in conflicts] == ["Sở Y tế"]
    assert dict(conflicts[0].labels) == {"OFFICE": 1, "ROLE": 1}
    assert dict(conflicts[0].docs) == {"OFFICE": ["d1"], "ROLE": ["d2"]}


def test_missed_occurrence_reported():
    misses = {(m.label, m.surface): m for m in consistency.missed_occurrences(DOCS)}
    office = misses[("OFFICE", "Sở Y tế")]
    assert office.annotated == 1 and office.annotated_docs == ["d1"]
    assert office.locations == [("d2", 0), ("d3", 9)]  # d2 has it as ROLE, not OFFICE
    assert misses[("ROLE", "Sở Y tế")].locations == [("d1", 0), ("d3", 9)]


def test_cli_writes_markdown_and_exits_0(tmp_path):
    app = typer.Typer()
    app.command()(consistency.main)
    out = tmp_path / "training" / "consistency.md"
    result = CliRunner().invoke(app, [str(_write(tmp_path)), "--output", str(out), "--top", "10"])
    assert result.exit_code == 0, result.output
    assert "Label conflicts: 1" in result.output
    report = out.read_text(encoding="utf8")
    assert "| Sở Y tế | 2 | OFFICE 1, ROLE 1 | OFFICE: d1; ROLE: d2 |" in report
    assert "| OFFICE | Sở Y tế | 1 (d1) | 2 | `d2@0`, `d3@9` |" in report


def test_cli_bad_input_exits_1(tmp_path):
    app = typer.Typer()
    app.command()(consistency.main)
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x"}\n', encoding="utf8")
    result = CliRunner().invoke(app, [str(path), "--output", str(tmp_path / "r.md")])
    assert result.exit_code == 1
    assert f"{path}:1 doc=x [field]" in result.output
