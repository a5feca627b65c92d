"""Importers: tool exports → corpus documents, round trips, errors, CLI."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import importers  # noqa: E402
from corpus import read_records, validate_records  # noqa: E402

TEXT = "Giám đốc Sở Y tế Lê Văn Hùng làm Trưởng ban."


def _at(surface: str) -> tuple:
    start = TEXT.index(surface)
    return start, start + len(surface)


#: (surface, label) in text order; expected ids s1.. follow this order.
SPANS = [("Giám đốc", "ROLE"), ("Sở Y tế", "OFFICE"), ("Lê Văn Hùng", "PERSON"), ("Trưởng ban", "ROLE")]
#: (head surface, child surface, label)
RELATIONS = [("Giám đốc", "Sở Y tế", "ROLE_IN"), ("Lê Văn Hùng", "Giám đốc", "HOLDS"),
             ("Lê Văn Hùng", "Trưởng ban", "HOLDS")]
META = {"source": "written", "genre": "news", "province": "Long An"}


def expected(doc_id: str, meta: dict) -> dict:
    ids = {surface: f"s{n}" for n, (surface, _) in enumerate(SPANS, start=1)}
    return {
        "id": doc_id, "text": TEXT, "meta": meta,
        "spans": [{"id": ids[s], "start": _at(s)[0], "end": _at(s)[1], "label": label} for s, label in SPANS],
        "relations": [{"head": ids[h], "child": ids[c], "label": label} for h, c, label in RELATIONS],
    }


def label_studio_task() -> dict:
    """A task as Label Studio exports it; result ids are arbitrary strings,
    results out of text order, one relation written right-to-left."""
    ids = {"Giám đốc": "Xa9", "Sở Y tế": "b2Q", "Lê Văn Hùng": "zz1", "Trưởng ban": "c7"}
    result = []
    for surface, label in reversed(SPANS):
        start, end = _at(surface)
        result.append({"id": ids[surface], "from_name": "label", "to_name": "text", "type": "labels",
                       "value": {"start": start, "end": end, "text": surface, "labels": [label]}})
    result.append({"from_id": ids["Giám đốc"], "to_id": ids["Sở Y tế"], "type": "relation",
                   "direction": "right", "labels": ["ROLE_IN"]})
    result.append({"from_id": ids["Giám đốc"], "to_id": ids["Lê Văn Hùng"], "type": "relation",
                   "direction": "left", "labels": ["HOLDS"]})
    result.append({"from_id": ids["Lê Văn Hùng"], "to_id": ids["Trưởng ban"], "type": "relation",
                   "direction": "right", "labels": ["HOLDS"]})
    return {"id": 41, "data": {"text": TEXT, "meta": dict(META, id="ls-doc-1")},
            "annotations": [{"id": 1, "result": result}, {"id": 2, "result": []}]}


def doccano_line() -> dict:
    """A doccano relation-project line; entity ids in reverse text order."""
    ids = {"Giám đốc": 14, "Sở Y tế": 13, "Lê Văn Hùng": 12, "Trưởng ban": 11}
    entities = [{"id": ids[s], "label": label, "start_offset": _at(s)[0], "end_offset": _at(s)[1]}
                for s, label in SPANS]
    relations = [{"id": n, "from_id": ids[h], "to_id": ids[c], "type": label}
                 for n, (h, c, label) in enumerate(RELATIONS, start=100)]
    return {"id": 7, "text": TEXT, "entities": entities, "relations": relations}


def prodigy_line() -> dict:
    """A Prodigy rel.manual example (token indices made up: not used)."""
    spans = {s: {"start": _at(s)[0], "end": _at(s)[1], "label": label, "token_start": 0, "token_end": 0}
             for s, label in SPANS}
    relations = [{"head": 0, "child": 0, "label": label, "head_span": spans[h], "child_span": spans[c]}
                 for h, c, label in RELATIONS]
    return {"text": TEXT, "spans": list(spans.values())[::-1], "relations": relations,
            "meta": {"genre": "decision"}, "_input_hash": -123, "answer": "accept"}


# ---------------------------------------------------------------- converters
def test_from_label_studio_fixture():
    assert importers.from_label_studio(label_studio_task()) == expected("ls-doc-1", META)


def test_from_doccano_fixture():
    assert importers.from_doccano(doccano_line()) == expected("doccano-7", {})


def test_from_prodigy_fixture():
    assert importers.from_prodigy(prodigy_line()) == expected("prodigy--123", {"genre": "decision"})


def _by_offsets(doc: dict) -> tuple:
    spans = {s["id"]: (s["start"], s["end"], s["label"]) for s in doc["spans"]}
    rels = sorted((spans[r["head"]], spans[r["child"]], r["label"]) for r in doc["relations"])
    return sorted(spans.values()), rels


@pytest.fixture(scope="module")
def dev_docs() -> list:
    docs = [rec.data for rec in read_records(REPO_ROOT / "corpus" / "dev.jsonl")]
    picked = [d for d in docs if d["relations"]][:3]
    assert len(picked) == 3
    return picked


@pytest.mark.parametrize("fmt", ["label_studio", "doccano", "prodigy"])
def test_round_trip_real_documents(fmt, dev_docs):
    to_fn, from_fn = getattr(importers, f"to_{fmt}"), getattr(importers, f"from_{fmt}")
    for doc in dev_docs:
        exported = json.loads(json.dumps(to_fn(doc), ensure_ascii=False))
        back = from_fn(exported)
        assert back["id"] == doc["id"]
        assert back["text"] == doc["text"]
        assert back["meta"] == doc["meta"]
        assert _by_offsets(back) == _by_offsets(doc)
        assert len(back["spans"]) == len(doc["spans"]) and len(back["relations"]) == len(doc["relations"])


# ----------------------------------------------------------- malformed input
def _ls_labels(task: dict) -> list:
    return [r for r in task["annotations"][0]["result"] if r["type"] == "labels"]


def test_label_studio_missing_field():
    task = label_studio_task()
    del _ls_labels(task)[0]["value"]["start"]
    with pytest.raises(ValueError, match=r"annotations\[0\]\.result\[0\]\.value\.start"):
        importers.from_label_studio(task)
    task = label_studio_task()
    del task["data"]["text"]
    with pytest.raises(ValueError, match=r"data\.text"):
        importers.from_label_studio(task)


def test_label_studio_text_mismatch():
    task = label_studio_task()
    _ls_labels(task)[1]["value"]["text"] = "Sở Y tế tỉnh"
    with pytest.raises(ValueError, match=r"result\[1\]\.value\.text"):
        importers.from_label_studio(task)


def test_label_studio_relation_to_missing_id():
    task = label_studio_task()
    task["annotations"][0]["result"][-1]["to_id"] = "nope"
    with pytest.raises(ValueError, match=r"from_id/to_id.*'nope'"):
        importers.from_label_studio(task)


def test_doccano_errors():
    line = doccano_line()
    del line["entities"][2]["end_offset"]
    with pytest.raises(ValueError, match=r"entities\[2\]\.end_offset"):
        importers.from_doccano(line)
    line = doccano_line()
    line["entities"][0]["end_offset"] = len(TEXT) + 5
    with pytest.raises(ValueError, match=r"entities\[0\].*outside the text"):
        importers.from_doccano(line)
    line = doccano_line()
    line["relations"][1]["to_id"] = 999
    with pytest.raises(ValueError, match=r"relations\[1\]\.from_id/to_id.*999"):
        importers.from_doccano(line)


def test_prodigy_errors():
    line = prodigy_line()
    del line["spans"][0]["label"]
    with pytest.raises(ValueError, match=r"spans\[0\]\.label"):
        importers.from_prodigy(line)
    line = prodigy_line()
    line["spans"][0]["text"] = "something else"
    with pytest.raises(ValueError, match=r"spans\[0\]\.text"):
        importers.from_prodigy(line)
    line = prodigy_line()
    line["relations"][0]["child_span"] = {"start": 0, "end": 3, "label": "OFFICE"}
    with pytest.raises(ValueError, match=r"relations\[0\]\.child_span.*no span"):
        importers.from_prodigy(line)
    line = prodigy_line()
    del line["_input_hash"]
    with pytest.raises(ValueError, match=r"meta\.id.*_input_hash"):
        importers.from_prodigy(line)


def test_exporters_reject_dangling_relation(dev_docs):
    doc = copy.deepcopy(dev_docs[0])
    doc["relations"][0]["child"] = "s9999"
    for fn in (importers.to_label_studio, importers.to_doccano, importers.to_prodigy):
        with pytest.raises(ValueError, match=r"relations\[0\]\.child"):
            fn(doc)


# ----------------------------------------------------------------------- CLI
runner = CliRunner()


def _write(path: Path, fmt: str, rows: list) -> Path:
    if fmt == "label-studio":
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf8")
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf8")
    return path


CASES = {
    "label-studio": (label_studio_task, "ls-doc-1", "news"),
    "doccano": (doccano_line, "doccano-7", "announcement"),
    "prodigy": (prodigy_line, "prodigy--123", "decision"),  # genre from the export's meta
}


@pytest.mark.parametrize("fmt", list(CASES))
def test_cli_writes_valid_jsonl(fmt, tmp_path):
    make, doc_id, genre = CASES[fmt]
    second = make()
    if fmt == "label-studio":
        second["data"]["meta"]["id"] = "ls-doc-2"
    elif fmt == "doccano":
        second["id"] = 8
    else:
        second["_input_hash"] = 456
    src = _write(tmp_path / "export.json", fmt, [make(), second])
    out = tmp_path / "imported" / "x.jsonl"
    result = runner.invoke(importers.app, [fmt, str(src), str(out), "--genre", "announcement", "--province", "Long An"])
    assert result.exit_code == 0, result.output
    records = list(read_records(out))
    assert len(records) == 2
    assert validate_records(records) == []
    doc = records[0].data
    assert doc["id"] == doc_id
    assert doc["meta"] == {"source": "written", "genre": genre, "province": "Long An"}
    assert _by_offsets(doc) == _by_offsets(expected(doc_id, META))


def test_cli_bad_input_exits_1_and_writes_nothing(tmp_path):
    line = doccano_line()
    del line["entities"][1]["label"]
    src = _write(tmp_path / "bad.jsonl", "doccano", [doccano_line(), line])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(importers.app, ["doccano", str(src), str(out), "--genre", "news", "--province", "Hà Nội"])
    assert result.exit_code == 1
    assert f"{src} line 2 (record 7): field 'entities[1].label' is missing" in result.output
    assert not out.exists()


def test_cli_missing_meta_names_field(tmp_path):
    task = label_studio_task()
    del task["data"]["meta"]["province"]
    src = _write(tmp_path / "ls.json", "label-studio", [task])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(importers.app, ["label-studio", str(src), str(out)])
    assert result.exit_code == 1
    assert "task 1 (record ls-doc-1)" in result.output
    assert "meta.province" in result.output and "--province" in result.output
    assert not out.exists()


def test_cli_guideline_violation_is_reported(tmp_path):
    """A span the tool allowed but the guideline forbids (trailing '.')."""
    line = doccano_line()
    line["entities"][3]["end_offset"] += 1  # "Trưởng ban."
    src = _write(tmp_path / "d.jsonl", "doccano", [line])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(importers.app, ["doccano", str(src), str(out), "--genre", "news", "--province", "Huế"])
    assert result.exit_code == 1
    assert f"{src}:1 doc=doccano-7 span=s4 [span-punct]" in result.output
    assert not out.exists()


def test_cli_malformed_json(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps(prodigy_line()) + "\n{not json\n", encoding="utf8")
    result = runner.invoke(importers.app, ["prodigy", str(src), str(tmp_path / "o.jsonl"), "--province", "X"])
    assert result.exit_code == 1
    assert f"{src}:2" in result.output and "malformed JSON" in result.output
