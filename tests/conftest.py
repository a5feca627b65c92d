"""Shared test fixtures.

``trained_nlp`` trains a tiny but real pipeline (the project's own config,
tokenizer, components and training loop) once per test session on a small
slice of the corpus, so that tests exercise the loaded pipeline end to end
without depending on a model someone else trained. It predicts little; tests
must assert behaviour that holds for any weights (offsets, invariance,
no crash), not accuracy.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
for _sub in ("code", "scripts"):
    if str(REPO_ROOT / _sub) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / _sub))

import spacy  # noqa: E402
import vi_ie  # noqa: E402,F401  (registers the tokenizer, component and scorer)
from corpus import read_records  # noqa: E402
from convert import records_to_docbin  # noqa: E402

#: Size of the training slice and the small-model overrides: a few hundred
#: steps would learn more, but these tests need a real pipeline, not a good one.
N_TRAIN_DOCS = 30
N_DEV_DOCS = 8
TINY_OVERRIDES: Dict[str, object] = {
    "training.max_steps": 60,
    "training.eval_frequency": 30,
    "training.patience": 0,
    "components.tok2vec.model.encode.width": 64,
    "components.tok2vec.model.encode.depth": 2,
}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def trained_model_path(tmp_path_factory) -> Path:
    """Directory of a tiny pipeline trained from configs/default.cfg (model-last)."""
    from spacy.cli.train import train

    work = tmp_path_factory.mktemp("tiny_model")
    paths = {}
    for split, limit in (("train", N_TRAIN_DOCS), ("dev", N_DEV_DOCS)):
        records = list(read_records(REPO_ROOT / "corpus" / f"{split}.jsonl"))[:limit]
        paths[split] = work / f"{split}.spacy"
        records_to_docbin(records).to_disk(paths[split])
    overrides = {"paths.train": str(paths["train"]), "paths.dev": str(paths["dev"]), **TINY_OVERRIDES}
    output = work / "output"
    train(REPO_ROOT / "configs" / "default.cfg", output, overrides=overrides, use_gpu=-1)
    return output / "model-last"


@pytest.fixture(scope="session")
def trained_nlp(trained_model_path: Path) -> "spacy.Language":
    """The tiny trained pipeline, loaded as a user would load it."""
    return spacy.load(trained_model_path)
