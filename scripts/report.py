"""Write a Markdown evaluation report with plots for a trained pipeline.

What it answers, beyond the numbers of ``scripts/evaluate.py``:

* which entity labels the model confuses, and how often it misses or
  invents a span (confusion on test);
* whether the relation thresholds are well placed (P/R/F per label over a
  threshold sweep on dev, scored strictly end to end);
* whether more annotated documents would help (learning curve: the same
  config trained on 10/25/50/100% of train, scored on test);
* what the model adds over looking names up (a span_ruler built from the
  training split's entity strings);
* how the tokenizers compare (``training/tokenization.json`` if present).

Output: ``<output-dir>/report.md`` and PNG plots next to it.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402
import typer  # noqa: E402
from spacy.tokens import Doc, DocBin, Span  # noqa: E402
from tqdm import tqdm  # noqa: E402
from wasabi import msg  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evaluate as ev  # noqa: E402
from corpus import blank_nlp  # noqa: E402
import vi_ie  # noqa: E402



# ------------------------------------------------------------ pure helpers
def fmt(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.3f}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def prf_rows(per_label: Dict[str, Dict[str, float]], micro: Optional[Dict[str, float]] = None) -> List[List[object]]:
    rows = [[label, fmt(s["p"]), fmt(s["r"]), fmt(s["f"]), s.get("tp", ""), s.get("fp", ""), s.get("fn", "")]
            for label, s in per_label.items()]
    if micro is not None:
        rows.append(["**micro**", fmt(micro["p"]), fmt(micro["r"]), fmt(micro["f"]),
                     micro.get("tp", ""), micro.get("fp", ""), micro.get("fn", "")])
    return rows


def subset_indices(n: int, fraction: float, seed: int = 0) -> List[int]:
    """The first ``round(fraction * n)`` (at least 1) of a seeded shuffle of
    range(n); smaller fractions are prefixes of larger ones."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[: max(1, round(fraction * n))])


def lexicon_patterns(train_docs: Iterable[Doc]) -> List[Dict[str, str]]:
    """span_ruler phrase patterns: every entity surface string of the
    training split, with the label it carries most often there."""
    seen: Dict[str, Counter] = defaultdict(Counter)
    for doc in train_docs:
        for ent in doc.ents:
            text = ent.text.strip()
            if text:
                seen[text][ent.label_] += 1
    return [{"label": counts.most_common(1)[0][0], "pattern": text} for text, counts in sorted(seen.items())]


def build_baseline(train_docs: Sequence[Doc]):
    """Blank pipeline with the project tokenizer and a span_ruler matching
    on NORM (the tokenizer's canonical lowercase form), writing doc.ents."""
    nlp = blank_nlp()
    ruler = nlp.add_pipe("span_ruler", config={
        "spans_key": None, "annotate_ents": True, "phrase_matcher_attr": "NORM", "overwrite": True,
    })
    ruler.add_patterns(lexicon_patterns(train_docs))
    return nlp


# ------------------------------------------------------------------ plots
def plot_confusion(matrix: Dict[str, Dict[str, int]], path: Path) -> None:
    rows, cols = list(matrix), list(next(iter(matrix.values())))
    data = numpy.array([[matrix[r][c] for c in cols] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2, 1.0 * len(rows) + 1.5))
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    top = data.max() if data.size else 0
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, int(data[i, j]), ha="center", va="center", color="white" if data[i, j] > top / 2 else "black")
    ax.set_title("Entity confusion (test, identical offsets)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finish_plot(fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> None:
    """Label an F-score plot (0..1), save it as PNG and free the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sweep(sweep: Dict[str, List[Dict[str, float]]], current: Dict[str, float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rows in sweep.items():
        line, = ax.plot([r["threshold"] for r in rows], [r["f"] for r in rows], marker=".", label=label)
        if label in current:
            ax.axvline(current[label], color=line.get_color(), linestyle=":", linewidth=0.8)
    _finish_plot(fig, ax, "threshold", "F (strict, end to end)", "Relation F vs threshold (dev); dotted: current threshold", path)


def plot_curve(points: List[Dict[str, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    fractions = [p["fraction"] for p in points]
    for key, name in (("ents_f", "entities micro-F"), ("mandate_f", "MANDATE exact F"), ("rel_f", "relations micro-F")):
        ax.plot(fractions, [p[key] for p in points], marker="o", label=name)
    _finish_plot(fig, ax, "fraction of training documents", "F on test", "Learning curve", path)


# --------------------------------------------------------------- sections
def learning_curve(config: Path, code: Path, train_path: Path, dev_path: Path, test_path: Path,
                   fractions: Sequence[float], steps: int, workdir: Path, seed: int = 0,
                   log_dir: Optional[Path] = None) -> List[Dict[str, float]]:
    """Train the config on growing subsets of train and score each on test.
    spaCy's training log of each run goes to ``log_dir`` (default: workdir)."""
    from spacy.cli.train import train

    vocab_nlp = blank_nlp()
    train_docs = ev.load_docs(train_path, vocab_nlp.vocab)
    points = []
    for fraction in tqdm(fractions, desc="learning curve"):
        idx = subset_indices(len(train_docs), fraction, seed)
        subset = workdir / f"train_{fraction:g}.spacy"
        DocBin(docs=[train_docs[i] for i in idx], store_user_data=True).to_disk(subset)
        out_dir = workdir / f"model_{fraction:g}"
        overrides = {
            "paths.train": str(subset), "paths.dev": str(dev_path),
            "training.max_steps": steps, "training.eval_frequency": max(1, steps // 4),
            "training.logger.progress_bar": False,
        }
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            train(config, out_dir, use_gpu=-1, overrides=overrides)
        (log_dir or workdir).joinpath(f"curve_train_{fraction:g}.log").write_text(log.getvalue(), encoding="utf8")
        nlp = ev.load_pipeline(out_dir / "model-best", code)
        gold = ev.load_docs(test_path, nlp.vocab)
        preds = ev.predict(nlp, [d.text for d in gold], desc=f"test @{fraction:g}")
        scores = ev.task_scores(gold, preds)
        points.append({
            "fraction": fraction, "n_docs": len(idx),
            "ents_f": scores["entities"]["micro"]["f"],
            "mandate_f": scores["mandates"]["exact"]["f"],
            "rel_f": scores["relations"]["rel_micro_f"],
        })
    return points


TOKENIZATION_COLUMNS = (
    ("misaligned", "misaligned spans"), ("misaligned_share", "share"),
    ("dev_ents_p", "NER dev P"), ("dev_ents_r", "NER dev R"), ("dev_ents_f", "NER dev F"),
    ("words_per_second", "words/s"), ("tokens", "tokens"),
)


def tokenization_section(path: Path) -> str:
    """The tokenizer comparison as a table, plus pyvi's misaligned examples."""
    if not path.exists():
        return f"`{path}` does not exist yet: `spacy project run tokenization` produces it."
    data = json.loads(path.read_text(encoding="utf8"))
    rows = []
    for name in ("syllable", "pyvi"):
        values = data.get(name, {})
        rows.append([name] + [fmt(values[k]) if isinstance(values.get(k), float) else values.get(k, "–")
                              for k, _ in TOKENIZATION_COLUMNS])
    lines = [md_table(["tokenizer"] + [title for _, title in TOKENIZATION_COLUMNS], rows), ""]
    lines.append(f"NER-only pipelines trained for {data.get('train_steps', '?')} steps; misaligned gold entities count as missed.")
    examples = data.get("pyvi", {}).get("examples") or []
    if examples:
        lines += ["", "pyvi tokens that cut through annotated spans:", ""]
        lines += [f"- {ex['label']} `{ex['text']}` → {ex['tokens']}" for ex in examples]
    return "\n".join(lines)


# -------------------------------------------------------------------- CLI
def main(
    model_dir: Path = typer.Argument(..., help="Trained pipeline directory", exists=True),
    code: Path = typer.Option(ev.ROOT / "code" / "vi_ie.py", "--code", exists=True),
    train_path: Path = typer.Option(Path("corpus/spacy/train.spacy"), "--train", exists=True),
    dev_path: Path = typer.Option(Path("corpus/spacy/dev.spacy"), "--dev", exists=True),
    test_path: Path = typer.Option(Path("corpus/spacy/test.spacy"), "--test", exists=True),
    config: Path = typer.Option(Path("configs/default.cfg"), "--config", exists=True),
    output_dir: Path = typer.Option(Path("training/report"), "--output-dir"),
    tokenization: Path = typer.Option(Path("training/tokenization.json"), "--tokenization", help="Tokenizer comparison JSON (optional)"),
    curve_steps: int = typer.Option(600, "--curve-steps", help="Training steps per learning-curve point"),
    curve_fractions: str = typer.Option("0.1,0.25,0.5,1.0", "--curve-fractions"),
    skip_curve: bool = typer.Option(False, "--skip-curve", help="Leave out the learning curve (slow)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the training-subset shuffle"),
) -> None:
    """Write <output-dir>/report.md with tables and PNG plots."""
    output_dir.mkdir(parents=True, exist_ok=True)
    nlp = ev.load_pipeline(model_dir, code)
    test_docs = ev.load_docs(test_path, nlp.vocab)
    dev_docs = ev.load_docs(dev_path, nlp.vocab)

    msg.info("Scoring the pipeline on test")
    test_preds = ev.predict(nlp, [d.text for d in test_docs], desc="test")
    scores = ev.task_scores(test_docs, test_preds)
    ents, man, rel = scores["entities"], scores["mandates"], scores["relations"]
    confusion = ev.entity_confusion(test_docs, test_preds)
    plot_confusion(confusion, output_dir / "confusion.png")

    msg.info("Relation threshold sweep on dev")
    sweep, current, top = ev.relation_sweep(nlp, dev_docs)
    best = ev.best_thresholds(sweep)
    plot_sweep(sweep, current, output_dir / "relation_thresholds.png")

    msg.info("Rule-based baseline (span_ruler on training lexicons)")
    train_docs = ev.load_docs(train_path, nlp.vocab)
    baseline = build_baseline(train_docs)
    base_preds = list(baseline.pipe(d.text for d in test_docs))
    base_scores = ev.exact_span_scores([ev.span_keys(d.ents) for d in test_docs], [ev.span_keys(d.ents) for d in base_preds])

    points: List[Dict[str, float]] = []
    if not skip_curve:
        fractions = [float(f) for f in curve_fractions.split(",") if f.strip()]
        msg.info(f"Learning curve: {fractions} x {curve_steps} steps")
        with tempfile.TemporaryDirectory() as tmp:
            points = learning_curve(config, code, train_path, dev_path, test_path, fractions, curve_steps, Path(tmp), seed, log_dir=output_dir)
        plot_curve(points, output_dir / "learning_curve.png")

    lines = [f"# Evaluation report: `{model_dir}`", ""]
    lines += ["## Headline (test)", "", md_table(["metric", "value"], [
        ["entities micro-F (exact span)", fmt(ents["micro"]["f"])],
        ["MANDATE exact F", fmt(man["exact"]["f"])],
        [f"MANDATE ≥{man['min_overlap']:.0%}-overlap F", fmt(man["overlap"]["f"])],
        ["relations micro-F (strict, end to end)", fmt(rel["rel_micro_f"])],
    ]), "", f"Test: `{test_path}` ({len(test_docs)} docs); dev: `{dev_path}` ({len(dev_docs)} docs).", ""]
    header = ["label", "P", "R", "F", "TP", "FP", "FN"]
    lines += ["## Entities (test, exact span)", "", md_table(header, prf_rows(ents["per_label"], ents["micro"])), "",
              "seqeval (strict, IOB2):", "", "```", ents["seqeval_report"].rstrip(), "```", ""]
    lines += ["## MANDATE (test)", "", md_table(header, prf_rows(
        {"exact": man["exact"], f"≥{man['min_overlap']:.0%} overlap": man["overlap"]})), "",
        "Overlap: a predicted span matches a gold one when the tokens they share are at least half of "
        "the longer span; matching is one-to-one, best overlap first.", ""]
    rel_rows = [[label, fmt(s["p"]), fmt(s["r"]), fmt(s["f"])] for label, s in rel["rel_per_type"].items()]
    rel_rows.append(["**micro**", fmt(rel["rel_micro_p"]), fmt(rel["rel_micro_r"]), fmt(rel["rel_micro_f"])])
    lines += ["## Relations (test, strict end to end)", "", md_table(["label", "P", "R", "F"], rel_rows), ""]
    cols = list(next(iter(confusion.values())))
    lines += ["## Entity confusion (test)", "",
              "Rows: gold label (\"spurious\": predicted span with no gold span at its offsets); columns: "
              "predicted label at identical offsets (\"missed\": no predicted span there).", "",
              md_table(["gold \\ pred"] + cols, [[r] + [confusion[r][c] for c in cols] for r in confusion]), "",
              "![confusion](confusion.png)", ""]
    sweep_rows = []
    for label, rows in sweep.items():
        cur = min(rows, key=lambda r: abs(r["threshold"] - current[label]))
        b = best[label]
        sweep_rows.append([label, fmt(current[label]), fmt(cur["f"]), fmt(b["threshold"]), fmt(b["p"]), fmt(b["r"]), fmt(b["f"]), f"{top[label]:.2g}"])
    lines += ["## Relation thresholds (dev sweep)", "",
              "Candidates scored by the relation_extractor on docs annotated by the rest of the pipeline; "
              "F at the current threshold is read at the nearest swept value; \"max score\": the highest "
              "candidate score of the label (below 0.05 the component predicts nothing at any swept threshold).", "",
              md_table(["label", "current", "F @ current", "best threshold", "P", "R", "best F", "max score"], sweep_rows), "",
              "![thresholds](relation_thresholds.png)", ""]
    base_rows = []
    for label in sorted(set(base_scores["per_label"]) | set(ents["per_label"])):
        b = base_scores["per_label"].get(label)
        m = ents["per_label"].get(label)
        base_rows.append([label] + ([fmt(b["p"]), fmt(b["r"]), fmt(b["f"])] if b else ["–"] * 3)
                         + ([fmt(m["p"]), fmt(m["r"]), fmt(m["f"])] if m else ["–"] * 3))
    bm, mm = base_scores["micro"], ents["micro"]
    base_rows.append(["**micro**", fmt(bm["p"]), fmt(bm["r"]), fmt(bm["f"]), fmt(mm["p"]), fmt(mm["r"]), fmt(mm["f"])])
    lines += ["## Rule-based baseline (test entities, exact span)", "",
              f"span_ruler with {len(baseline.get_pipe('span_ruler').patterns)} phrase patterns (every OFFICE, ROLE and "
              "PERSON string of the training split, matched on NORM, most frequent label), longest match first.", "",
              md_table(["label", "ruler P", "ruler R", "ruler F", "model P", "model R", "model F"], base_rows), ""]
    lines += ["## Learning curve (test)", ""]
    if points:
        lines += [f"`{config}` trained for {curve_steps} steps on a seeded subset of `{train_path}` (model-best on dev).", "",
                  md_table(["fraction", "docs", "entities F", "MANDATE exact F", "relations F"],
                           [[f"{p['fraction']:g}", p["n_docs"], fmt(p["ents_f"]), fmt(p["mandate_f"]), fmt(p["rel_f"])] for p in points]),
                  "", "![learning curve](learning_curve.png)", ""]
    else:
        lines += ["Skipped (`--skip-curve`).", ""]
    lines += ["## Tokenization", "", tokenization_section(tokenization), ""]
    (output_dir / "report.md").write_text("\n".join(lines), encoding="utf8")
    (output_dir / "report.json").write_text(json.dumps(ev._plain({
        "test": {k: v for k, v in scores.items()}, "confusion": confusion, "relation_sweep": sweep,
        "best_thresholds": best, "current_thresholds": current, "max_scores": top, "baseline": base_scores, "learning_curve": points,
    }), ensure_ascii=False, indent=2), encoding="utf8")
    msg.good(f"Wrote {output_dir / 'report.md'}")


if __name__ == "__main__":
    typer.run(main)
