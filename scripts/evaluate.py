"""Evaluate a trained pipeline on DocBin files and write the metrics as JSON.

Why not only ``spacy evaluate``: the project needs figures spaCy does not
give. Entities get seqeval's strict IOB2 report next to exact-span scores;
MANDATE spans, which are long and whose edges annotators place differently,
get a lenient >=50%-overlap score beside the exact one; relations are scored
strictly end to end (wrong argument = wrong relation). Spelling variants of
the test texts (NFD, the other tone-mark convention, ...) are predicted and
scored against the clean gold token by token, which shows whether the model
is as robust as its tokenizer.

The metric computations are small pure functions on Docs, shared with
``scripts/report.py`` and the tests.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
import typer
from spacy.scorer import PRFScore, Scorer
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from tqdm import tqdm
from wasabi import msg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "code"))
sys.path.insert(0, str(ROOT / "scripts"))
import vi_ie  # noqa: E402

SpanKey = Tuple[int, int, str]  # token start, token end, label


class TokenCountMismatch(ValueError):
    """A variant text gave a different token sequence than the clean text,
    so its predictions cannot be compared token by token."""


# --------------------------------------------------------------------- I/O
def load_pipeline(model_dir: Path, code: Optional[Path] = None, gpu_id: int = -1):
    """Import the custom code, then load the pipeline."""
    import spacy
    from spacy.util import import_file

    if code is not None:
        import_file("vi_ie_code", str(code))
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    return spacy.load(model_dir)


def load_docs(path: Path, vocab) -> List[Doc]:
    """Gold docs of a DocBin (relations come back in ``doc._.relations``)."""
    return list(DocBin().from_disk(path).get_docs(vocab))


def predict(nlp, texts: Sequence[str], batch_size: int = 16, desc: str = "predict", disable: Sequence[str] = ()) -> List[Doc]:
    """Run the pipeline over ``texts`` with a progress bar."""
    docs = nlp.pipe(texts, batch_size=batch_size, disable=list(disable))
    return list(tqdm(docs, total=len(texts), desc=desc, leave=False))


# ------------------------------------------------------------- primitives
def prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    """Precision, recall, F1 and the counts, as plain JSON-able numbers."""
    score = PRFScore(tp=tp, fp=fp, fn=fn)
    return {"p": score.precision, "r": score.recall, "f": score.fscore, "tp": tp, "fp": fp, "fn": fn}


def span_keys(spans: Iterable[Span]) -> List[SpanKey]:
    return [(s.start, s.end, s.label_) for s in spans]


def _check_lengths(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> None:
    if len(gold_docs) != len(pred_docs):
        raise ValueError(f"{len(gold_docs)} gold docs but {len(pred_docs)} predicted docs")
    for i, (gold, pred) in enumerate(zip(gold_docs, pred_docs)):
        if len(gold) != len(pred):
            doc_id = gold.user_data.get("doc_id", i) if gold.user_data else i
            raise TokenCountMismatch(
                f"doc {doc_id}: gold has {len(gold)} tokens, prediction has {len(pred)}; "
                "token-index scoring needs the same tokenization"
            )


def exact_span_scores(gold: Sequence[Iterable[SpanKey]], pred: Sequence[Iterable[SpanKey]]) -> Dict[str, object]:
    """Exact-match P/R/F (same token offsets and label), micro and per label.

    ``gold`` and ``pred`` hold one collection of (start, end, label) per doc."""
    counts: Dict[str, List[int]] = {}
    for g_doc, p_doc in zip(gold, pred):
        g, p = set(g_doc), set(p_doc)
        for label in {k[2] for k in g | p}:
            gl = {k for k in g if k[2] == label}
            pl = {k for k in p if k[2] == label}
            c = counts.setdefault(label, [0, 0, 0])
            c[0] += len(gl & pl)
            c[1] += len(pl - gl)
            c[2] += len(gl - pl)
    per_label = {label: prf(*c) for label, c in sorted(counts.items())}
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {"micro": prf(*total), "per_label": per_label}


def overlap_ratio(a: Tuple[int, int], b: Tuple[int, int]) -> float:
    """Tokens shared by two token ranges, over the length of the longer one."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    longer = max(a[1] - a[0], b[1] - b[0])
    return max(0, shared) / longer if longer > 0 else 0.0


def overlap_matches(gold: Sequence[SpanKey], pred: Sequence[SpanKey], min_ratio: float = 0.5) -> List[Tuple[int, int]]:
    """One-to-one greedy matching of predicted to gold spans of the same
    label whose overlap is at least ``min_ratio`` of the longer span.

    Pairs are taken best overlap first (ties: document order), so an exact
    match is never lost to a partial one. Returns (gold index, pred index)."""
    pairs = []
    for gi, g in enumerate(gold):
        for pi, p in enumerate(pred):
            if g[2] != p[2]:
                continue
            ratio = overlap_ratio((g[0], g[1]), (p[0], p[1]))
            if ratio > 0 and ratio >= min_ratio:
                pairs.append((-ratio, gi, pi))
    pairs.sort()
    used_g, used_p, out = set(), set(), []
    for _, gi, pi in pairs:
        if gi not in used_g and pi not in used_p:
            used_g.add(gi)
            used_p.add(pi)
            out.append((gi, pi))
    return out


def overlap_span_scores(gold: Sequence[Sequence[SpanKey]], pred: Sequence[Sequence[SpanKey]], min_ratio: float = 0.5) -> Dict[str, object]:
    """Lenient P/R/F: a true positive is a matched pair of ``overlap_matches``."""
    counts: Dict[str, List[int]] = {}
    for g_doc, p_doc in zip(gold, pred):
        g_doc, p_doc = sorted(set(g_doc)), sorted(set(p_doc))
        matches = overlap_matches(g_doc, p_doc, min_ratio)
        for label in {k[2] for k in g_doc} | {k[2] for k in p_doc}:
            tp = sum(1 for gi, _ in matches if g_doc[gi][2] == label)
            c = counts.setdefault(label, [0, 0, 0])
            c[0] += tp
            c[1] += sum(1 for k in p_doc if k[2] == label) - tp
            c[2] += sum(1 for k in g_doc if k[2] == label) - tp
    per_label = {label: prf(*c) for label, c in sorted(counts.items())}
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {"micro": prf(*total), "per_label": per_label}


def iob2_tags(doc: Doc) -> List[str]:
    """IOB2 tag of every token from ``doc.ents`` (whitespace tokens too: they
    are "O" unless inside an entity)."""
    tags = ["O"] * len(doc)
    for ent in doc.ents:
        tags[ent.start] = f"B-{ent.label_}"
        for i in range(ent.start + 1, ent.end):
            tags[i] = f"I-{ent.label_}"
    return tags


def _plain(value):
    """numpy numbers -> Python numbers, recursively (for JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def seqeval_report(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> Tuple[str, Dict[str, object]]:
    """seqeval's strict IOB2 classification report (text and dict)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    _check_lengths(gold_docs, pred_docs)
    y_true = [iob2_tags(d) for d in gold_docs]
    y_pred = [iob2_tags(d) for d in pred_docs]
    kwargs = dict(mode="strict", scheme=IOB2, zero_division=0, digits=4)
    text = classification_report(y_true, y_pred, **kwargs)
    table = classification_report(y_true, y_pred, output_dict=True, **kwargs)
    return text, _plain(table)


# --------------------------------------------------------- task metrics
def entity_scores(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> Dict[str, object]:
    """OFFICE/PERSON/ROLE: exact span P/R/F (micro, per label) and seqeval."""
    _check_lengths(gold_docs, pred_docs)
    exact = exact_span_scores([span_keys(d.ents) for d in gold_docs], [span_keys(d.ents) for d in pred_docs])
    text, table = seqeval_report(gold_docs, pred_docs)
    return {**exact, "seqeval": table, "seqeval_report": text}


def mandate_spans(doc: Doc) -> List[SpanKey]:
    return span_keys(doc.spans.get(vi_ie.MANDATES_KEY, [])) if doc.spans else []


def mandate_scores(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], min_ratio: float = 0.5) -> Dict[str, object]:
    """MANDATE spans: exact P/R/F and >= ``min_ratio`` overlap P/R/F."""
    _check_lengths(gold_docs, pred_docs)
    gold = [mandate_spans(d) for d in gold_docs]
    pred = [mandate_spans(d) for d in pred_docs]
    exact = exact_span_scores(gold, pred)["micro"]
    overlap = overlap_span_scores(gold, pred, min_ratio)["micro"]
    return {"exact": exact, "overlap": overlap, "min_overlap": min_ratio}


def relation_scores(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> Dict[str, object]:
    """Strict end-to-end relation scores (vi_ie.score_relations)."""
    _check_lengths(gold_docs, pred_docs)
    examples = [Example(p, g) for g, p in zip(gold_docs, pred_docs)]
    return vi_ie.score_relations(examples)


def entity_confusion(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> Dict[str, Dict[str, int]]:
    """Gold label x predicted label over entity spans with identical token
    offsets. A gold span with no predicted span at its offsets counts in
    column "missed"; a predicted span with no gold span there, in row
    "spurious"."""
    _check_lengths(gold_docs, pred_docs)
    labels = sorted({e.label_ for d in list(gold_docs) + list(pred_docs) for e in d.ents} | set(vi_ie.ENTITY_LABELS))
    matrix = {g: {p: 0 for p in labels + ["missed"]} for g in labels + ["spurious"]}
    for gold, pred in zip(gold_docs, pred_docs):
        g = {(e.start, e.end): e.label_ for e in gold.ents}
        p = {(e.start, e.end): e.label_ for e in pred.ents}
        for offsets, label in g.items():
            matrix[label][p.get(offsets, "missed")] += 1
        for offsets, label in p.items():
            if offsets not in g:
                matrix["spurious"][label] += 1
    return matrix


def project_onto(pred: Doc, target: Doc) -> Doc:
    """A copy of ``target``'s tokens carrying ``pred``'s entities, mandates
    and relations, by token index. Used to score a prediction made on a
    spelling variant against the clean gold; refuses a different token count."""
    if len(pred) != len(target):
        raise TokenCountMismatch(
            f"variant gave {len(pred)} tokens, clean text {len(target)}: "
            "the tokenizer does not keep this variant's token sequence"
        )
    out = target.copy()
    out.ents = [Span(out, e.start, e.end, label=e.label_) for e in pred.ents]
    out.spans[vi_ie.MANDATES_KEY] = [Span(out, s.start, s.end, label=s.label_) for s in pred.spans.get(vi_ie.MANDATES_KEY, [])]
    out.user_data[vi_ie.RELATIONS_KEY] = list(pred.user_data.get(vi_ie.RELATIONS_KEY, []))
    return out


def task_scores(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> Dict[str, object]:
    """Entities, MANDATE and relation scores of one prediction run."""
    return {
        "entities": entity_scores(gold_docs, pred_docs),
        "mandates": mandate_scores(gold_docs, pred_docs),
        "relations": relation_scores(gold_docs, pred_docs),
    }


# ------------------------------------------------- relation threshold sweep
#: Thresholds swept per relation label: 0.05 .. 0.95.
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def candidate_keys(doc: Doc, cands: Sequence[vi_ie.Candidate], scores: numpy.ndarray, labels: Sequence[str]) -> List[Tuple[tuple, str, float]]:
    """(strict relation key, label, score) for every allowed candidate/label
    cell of the relation_extractor's predict() output for one doc."""
    out = []
    for row, (hs, he, hl, cs, ce, cl) in enumerate(cands):
        head, child = Span(doc, hs, he, label=hl), Span(doc, cs, ce, label=cl)
        for j, label in enumerate(labels):
            if scores[row, j] > 0:
                key = vi_ie.relation_key(vi_ie.Relation(head, child, label, float(scores[row, j])))
                out.append((key, label, float(scores[row, j])))
    return out


def threshold_sweep(scored: Sequence[Tuple[tuple, str, float]], gold: Iterable[tuple], thresholds: Sequence[float] = THRESHOLDS) -> Dict[str, List[Dict[str, float]]]:
    """Strict P/R/F per relation label at each threshold: a candidate counts
    as predicted when its score is >= the threshold; gold relations that no
    candidate covers stay false negatives (end to end)."""
    gold = set(gold)
    labels = sorted({k[-1] for k in gold} | {label for _, label, _ in scored})
    out: Dict[str, List[Dict[str, float]]] = {}
    for label in labels:
        g = {k for k in gold if k[-1] == label}
        cells = [(k, s) for k, lab, s in scored if lab == label]
        rows = []
        for t in thresholds:
            p = {k for k, s in cells if s >= t}
            rows.append({"threshold": t, **prf(len(p & g), len(p - g), len(g - p))})
        out[label] = rows
    return out


def best_thresholds(sweep: Dict[str, List[Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    """Per label, the threshold with the highest F; ties go to the higher
    threshold (fewer false positives). The tune step applies this choice."""
    return {label: max(rows, key=lambda r: (r["f"], r["threshold"])) for label, rows in sweep.items()}


def relation_sweep(nlp, dev_docs: Sequence[Doc], batch_size: int = 16):
    """Run everything but the relation_extractor, score all candidates with
    its predict(), and sweep thresholds against the gold relations.

    predict() must see docs that went through the pipeline's tok2vec: its
    listener reads ``doc.tensor`` outside training (zeros when it is unset)."""
    rel = nlp.get_pipe("relation_extractor")
    docs = predict(nlp, [d.text for d in dev_docs], batch_size, desc="dev (no relations)", disable=["relation_extractor"])
    scored, gold = [], set()
    for i, (pred, ref) in enumerate(zip(docs, dev_docs)):
        # keys carry the document index: the same offsets recur across documents
        cands, scores = rel.predict([pred])
        scored.extend(((i,) + key, label, score) for key, label, score in candidate_keys(pred, cands[0], scores, rel.labels))
        gold.update((i,) + vi_ie.relation_key(r) for r in ref._.relations)
    sweep = threshold_sweep(scored, gold)
    current = {label: rel.threshold_for(label) for label in sweep}
    top = {label: max((s for _, lab, s in scored if lab == label), default=0.0) for label in sweep}
    return sweep, current, top


def spacy_scores(nlp, gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], seconds: float) -> Dict[str, object]:
    """The dict ``nlp.evaluate(examples)`` returns, computed on the
    predictions already made (same Scorer, same component scorers) instead
    of running the pipeline a second time."""
    examples = [Example(p, g) for g, p in zip(gold_docs, pred_docs)]
    results = Scorer(nlp).score(examples)
    results["speed"] = sum(len(d) for d in pred_docs) / max(seconds, 1e-9)
    return _plain(results)


def variant_function(name: str, seed: int = 0) -> Callable[[str], str]:
    from variants import variant_functions

    functions = variant_functions(seed)
    if name not in functions:
        raise ValueError(f"unknown variant {name!r}; known: clean, {', '.join(functions)}")
    return functions[name]


def evaluate_file(nlp, gold_docs: Sequence[Doc], variant: str = "clean", batch_size: int = 16) -> Dict[str, object]:
    """Predict on the (variant) texts of ``gold_docs`` and score against the
    clean gold. The clean run also carries spaCy's own scores."""
    if variant == "clean":
        texts = [d.text for d in gold_docs]
    else:
        fn = variant_function(variant)
        texts = [fn(d.text) for d in gold_docs]
    start = time.perf_counter()
    preds = predict(nlp, texts, batch_size, desc=variant)
    seconds = time.perf_counter() - start
    if variant != "clean":
        preds = [project_onto(p, g) for p, g in zip(preds, gold_docs)]
    result: Dict[str, object] = {"variant": variant, "n_docs": len(gold_docs)}
    result.update(task_scores(gold_docs, preds))
    if variant == "clean":
        result["spacy"] = spacy_scores(nlp, gold_docs, preds, seconds)
    return result


# ------------------------------------------------------------------ output
def _row(name: str, s: Dict[str, float]) -> Tuple:
    return (name, f"{s['p']:.3f}", f"{s['r']:.3f}", f"{s['f']:.3f}", s["tp"], s["fp"], s["fn"])


def print_tables(title: str, result: Dict[str, object]) -> None:
    header = ("", "P", "R", "F", "TP", "FP", "FN")
    ents = result["entities"]
    rows = [_row(label, s) for label, s in ents["per_label"].items()] + [_row("micro", ents["micro"])]
    msg.divider(title)
    msg.table(rows, header=header, divider=True, title="Entities (exact span)")
    man = result["mandates"]
    msg.table([_row("exact", man["exact"]), _row(f">={man['min_overlap']:.0%} overlap", man["overlap"])],
              header=header, divider=True, title="MANDATE")
    rel = result["relations"]
    rel_rows = [(label, f"{s['p']:.3f}", f"{s['r']:.3f}", f"{s['f']:.3f}") for label, s in rel["rel_per_type"].items()]
    rel_rows.append(("micro", f"{rel['rel_micro_p']:.3f}", f"{rel['rel_micro_r']:.3f}", f"{rel['rel_micro_f']:.3f}"))
    msg.table(rel_rows, header=("", "P", "R", "F"), divider=True, title="Relations (strict, end to end)")


def main(
    model_dir: Path = typer.Argument(..., help="Trained pipeline directory", exists=True),
    code: Path = typer.Option(ROOT / "code" / "vi_ie.py", "--code", help="Custom code module", exists=True),
    data: List[Path] = typer.Option(..., "--data", help="DocBin file(s) to evaluate on (repeatable)", exists=True),
    output_dir: Path = typer.Option(Path("training/metrics"), "--output-dir", help="Where <stem>[.<variant>].json go"),
    variants: str = typer.Option("clean", "--variants", help="Comma-separated: clean and/or variants of scripts/variants.py (nfd, tone, ...)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to use, -1 for CPU"),
    batch_size: int = typer.Option(16, "--batch-size"),
) -> None:
    """Score the pipeline on each data file (and spelling variants of it);
    write training/metrics/<stem>.json and <stem>.<variant>.json."""
    nlp = load_pipeline(model_dir, code, gpu_id)
    names = [v.strip() for v in variants.split(",") if v.strip()]
    for name in names:
        if name != "clean":
            variant_function(name)  # fail before predicting
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in data:
        gold_docs = load_docs(path, nlp.vocab)
        summary = {}
        for name in names:
            try:
                result = evaluate_file(nlp, gold_docs, name, batch_size)
            except TokenCountMismatch as err:
                msg.fail(f"{path} ({name}): {err}", exits=1)
            result["data"] = str(path)
            result["model"] = str(model_dir)
            out = output_dir / (f"{path.stem}.json" if name == "clean" else f"{path.stem}.{name}.json")
            out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf8")
            print_tables(f"{path.name} [{name}]", result)
            if name == "clean":
                print(result["entities"]["seqeval_report"])
            summary[name] = result["entities"]["micro"]["f"]
            msg.good(f"Wrote {out}")
        if len(summary) > 1:
            base = summary.get("clean")
            rows = [(n, f"{f:.3f}", "" if base is None else f"{f - base:+.3f}") for n, f in summary.items()]
            msg.table(rows, header=("variant", "entity micro-F", "vs clean"), divider=True,
                      title=f"{path.name}: entity micro-F per variant")


if __name__ == "__main__":
    typer.run(main)
