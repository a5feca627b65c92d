"""The transformer config's code path, offline: a tiny randomly initialised
BERT with a WordPiece tokenizer trained here on corpus text stands in for
xlm-roberta-base; the pipeline trains for a few steps, saves, loads and
predicts with spacy-transformers listeners feeding every component."""
from __future__ import annotations

import json

import pytest
import spacy

from convert import records_to_docbin
from corpus import blank_nlp, read_records
from make_tiny_transformer import build_tiny_transformer


@pytest.mark.filterwarnings("ignore")
def test_transformer_config_trains_and_predicts(repo_root, tmp_path, monkeypatch):
    pytest.importorskip("spacy_transformers")
    from spacy.cli.train import train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    records = list(read_records(repo_root / "corpus" / "dev.jsonl"))[:6]
    nlp = blank_nlp()
    records_to_docbin(records[:4], nlp).to_disk(tmp_path / "train.spacy")
    records_to_docbin(records[4:], nlp).to_disk(tmp_path / "dev.spacy")
    model_dir = build_tiny_transformer((r.data["text"] for r in records), tmp_path / "tiny-bert")
    assert json.loads((model_dir / "config.json").read_text())["num_hidden_layers"] == 2
    train(
        repo_root / "configs" / "transformer.cfg",
        tmp_path / "out",
        overrides={
            "paths.train": str(tmp_path / "train.spacy"),
            "paths.dev": str(tmp_path / "dev.spacy"),
            "components.transformer.model.name": str(model_dir),
            "training.max_steps": 4,
            "training.eval_frequency": 2,
            "training.accumulate_gradient": 1,
            "training.batcher.size": 500,
        },
        use_gpu=-1,
    )
    loaded = spacy.load(tmp_path / "out" / "model-last")
    assert loaded.pipe_names == ["transformer", "ner", "mandate_tagger", "mandate_spans", "relation_extractor"]
    doc = loaded(records[0].data["text"])
    assert doc.text == records[0].data["text"]
    assert doc._.trf_data is not None
    for rel in doc._.relations:
        assert rel.label in loaded.get_pipe("relation_extractor").labels
    assert isinstance(doc._.relations, list)
