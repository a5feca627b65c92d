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
from pathlib import Path

import typer
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evaluate as ev  # noqa: E402  (also puts code/ on sys.path)
import vi_ie  # noqa: E402


def tune_min_tagged(nlp, gold_docs, candidates=range(1, 21)) -> int:
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
        f = ev.prf(tp, n_pred - tp, n_gold - tp)["f"]
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
    nlp = ev.load_pipeline(model_dir, code)
    rel = nlp.get_pipe("relation_extractor")
    gold_docs = ev.load_docs(dev_path, nlp.vocab)
    min_tagged = tune_min_tagged(nlp, gold_docs)
    msg.good(f"mandate_spans.min_tagged = {min_tagged}")
    sweep, _, _ = ev.relation_sweep(nlp, gold_docs)
    table = {
        label: {"threshold": row["threshold"], "p": row["p"], "r": row["r"], "f": row["f"], "gold": row["tp"] + row["fn"]}
        for label, row in ev.best_thresholds(sweep).items()
    }
    thresholds = {label: row["threshold"] for label, row in table.items()}
    rel.set_thresholds(thresholds)
    nlp.to_disk(output_dir)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"relation_thresholds": table, "mandate_min_tagged": min_tagged}, indent=2), encoding="utf8")
    msg.table([(k, v["threshold"], f"{v['p']:.3f}", f"{v['r']:.3f}", f"{v['f']:.3f}", v["gold"]) for k, v in table.items()],
              header=("label", "threshold", "P", "R", "F", "gold"), divider=True)
    msg.good(f"Saved pipeline with tuned thresholds to {output_dir}")


if __name__ == "__main__":
    typer.run(main)
