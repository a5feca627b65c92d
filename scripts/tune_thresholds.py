"""Tune the decision settings of the trained pipeline on the dev split.

1. The mandate decoder's ``min_tagged`` (how many tagged tokens make a
   duty): the value with the best exact MANDATE F on dev.
2. The relation extractor's per-label thresholds: the pipeline runs on dev
   texts (so relations are scored on predicted entities and mandates), the
   score of every candidate pair is collected, and each label gets the
   threshold with the best strict F (a gold relation the candidates never
   produced counts as a miss).

The pipeline is saved with both to OUTPUT_DIR; the test split is not used.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy
import spacy
import typer
from spacy.tokens import DocBin
from tqdm import tqdm
from wasabi import msg

GRID = [round(x, 2) for x in numpy.arange(0.05, 0.96, 0.05)]


def best_threshold(scored: List[Tuple[float, bool]], n_gold: int, grid=GRID) -> Tuple[float, Dict[str, float]]:
    """The grid threshold with the best F for (score, is_gold) pairs; ties go
    to the higher threshold (fewer false positives)."""
    best = (0.5, {"p": 0.0, "r": 0.0, "f": 0.0})
    for t in grid:
        tp = sum(1 for s, ok in scored if s >= t and ok)
        fp = sum(1 for s, ok in scored if s >= t and not ok)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / n_gold if n_gold else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        if f >= best[1]["f"]:
            best = (t, {"p": p, "r": r, "f": f})
    return best


def tune_min_tagged(nlp, gold_docs, vi_ie, candidates=range(1, 21)) -> int:
    """Set and return the ``min_tagged`` of ``mandate_spans`` with the best
    exact MANDATE F on ``gold_docs``."""
    pipe = nlp.get_pipe("mandate_spans")
    with nlp.select_pipes(disable=["mandate_spans", "relation_extractor"]):
        docs = list(nlp.pipe(d.text for d in gold_docs))
    best = (-1.0, pipe.min_tagged)
    for value in candidates:
        tp = n_pred = n_gold = 0
        for doc, gold in zip(docs, gold_docs):
            forms = [vi_ie.canonical_token(t.text) for t in doc]
            pred = set(vi_ie.spans_from_tags([t.tag_ for t in doc], forms, pipe.min_length, pipe.split_on_begin, value))
            ref = {(s.start, s.end) for s in gold.spans.get(vi_ie.MANDATES_KEY, [])}
            tp, n_pred, n_gold = tp + len(pred & ref), n_pred + len(pred), n_gold + len(ref)
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        if f > best[0]:
            best = (f, value)
    pipe.min_tagged = best[1]  # saved with the pipeline (mandate_spans/settings.json)
    return best[1]


def main(
    model_dir: Path = typer.Argument(..., help="Trained pipeline"),
    dev_path: Path = typer.Argument(..., help="Dev DocBin with gold relations"),
    output_dir: Path = typer.Argument(..., help="Where to save the tuned pipeline"),
    code: Path = typer.Option(Path("code/vi_ie.py"), help="Custom code module"),
    report: Path = typer.Option(Path("training/thresholds.json"), help="Tuning report"),
) -> None:
    """Tune and save per-label relation thresholds."""
    vi_ie = sys.modules.get("vi_ie") or spacy.util.import_file("vi_ie", code)

    nlp = spacy.load(model_dir)
    rel = nlp.get_pipe("relation_extractor")
    gold_docs = list(DocBin().from_disk(dev_path).get_docs(nlp.vocab))
    min_tagged = tune_min_tagged(nlp, gold_docs, vi_ie)
    msg.good(f"mandate_spans.min_tagged = {min_tagged}")
    scored: Dict[str, List[Tuple[float, bool]]] = defaultdict(list)
    n_gold: Dict[str, int] = defaultdict(int)
    with nlp.select_pipes(disable=["relation_extractor"]):
        docs = list(tqdm(nlp.pipe(d.text for d in gold_docs), total=len(gold_docs), desc="dev"))
    for doc, gold in zip(docs, gold_docs):
        gold_keys = {vi_ie.relation_key(r) for r in gold._.relations}
        for key in gold_keys:
            n_gold[key[-1]] += 1
        cands, scores = rel.predict([doc])
        for i, (hs, he, hl, cs, ce, cl) in enumerate(cands[0]):
            head = vi_ie._char_key(doc, hs, he, hl)
            child = vi_ie._char_key(doc, cs, ce, cl)
            for j, label in enumerate(rel.labels):
                if scores[i, j] > 0:
                    scored[label].append((float(scores[i, j]), head + child + (label,) in gold_keys))
    thresholds, table = {}, {}
    for label in rel.labels:
        t, prf = best_threshold(scored[label], n_gold[label])
        thresholds[label] = t
        table[label] = {"threshold": t, **prf, "gold": n_gold[label]}
    rel.set_thresholds(thresholds)
    nlp.to_disk(output_dir)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"relation_thresholds": table, "mandate_min_tagged": min_tagged}, indent=2), encoding="utf8")
    msg.table([(k, v["threshold"], f"{v['p']:.3f}", f"{v['r']:.3f}", f"{v['f']:.3f}", v["gold"]) for k, v in table.items()],
              header=("label", "threshold", "P", "R", "F", "gold"), divider=True)
    msg.good(f"Saved pipeline with tuned thresholds to {output_dir}")


if __name__ == "__main__":
    typer.run(main)
