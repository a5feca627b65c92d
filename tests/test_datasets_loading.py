"""The corpus splits load with Hugging Face ``datasets`` (offline, private cache)."""
from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("train", "dev", "test")


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf8") as handle:
        return sum(1 for line in handle if line.strip())


def test_load_dataset_json_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    import datasets  # imported here, after the environment points at tmp_path

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)  # in case it was imported earlier

    files = {split: str(REPO_ROOT / "corpus" / f"{split}.jsonl") for split in SPLITS}
    ds = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert set(ds) == set(SPLITS)
    for split in SPLITS:
        assert ds[split].num_rows == _count_lines(REPO_ROOT / "corpus" / f"{split}.jsonl")
    first = ds["train"][0]
    with open(files["train"], encoding="utf8") as handle:
        expected = json.loads(handle.readline())
    assert first["id"] == expected["id"]
    assert first["text"] == expected["text"]
    assert first["meta"] == expected["meta"]
    assert [(s["id"], s["start"], s["end"], s["label"]) for s in first["spans"]] == \
        [(s["id"], s["start"], s["end"], s["label"]) for s in expected["spans"]]
    assert [(r["head"], r["child"], r["label"]) for r in first["relations"]] == \
        [(r["head"], r["child"], r["label"]) for r in expected["relations"]]
