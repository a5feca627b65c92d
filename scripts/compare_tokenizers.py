"""Compare spaCy's Vietnamese tokenizer (pyvi word segmentation) with the
project's syllable tokenizer.

Why: spaCy's ``vi`` language segments words with pyvi, which joins syllables
into multi-syllable tokens ("Ủy ban", "Chỉ đạo"). Where its word boundaries
cut through an annotated span, the span cannot be represented on its tokens
and a model trained on them can never predict it. This script measures that
(a) as the number and share of annotated spans per label whose character
offsets do not fall on token boundaries, and (b) optionally as the dev entity
P/R/F of the same tok2vec + ner pipeline trained briefly on each tokenizer.
For (b), pyvi's misaligned entities are dropped from its training and dev
DocBins (for this comparison only, and counted), but its predictions are
scored by character offsets against ALL gold entities, so the spans it cannot
represent count as misses. Words/s of each tokenizer alone are reported too.

The train and dev files are the --corpus files named train*.jsonl / dev*.jsonl.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import spacy
import typer
from spacy.scorer import PRFScore
from spacy.tokens import Doc, DocBin
from tqdm import tqdm
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import Record, blank_nlp, read_records  # noqa: E402
import vi_ie  # noqa: E402

PYVI_TOKENIZER = {"@tokenizers": "spacy.vi.VietnameseTokenizer", "use_pyvi": True}
SYLLABLE_TOKENIZER = {"@tokenizers": "vi_decision_ie.SyllableTokenizer.v1"}
N_EXAMPLES = 5


# ------------------------------------------------------------ tokenizers
def pyvi_nlp() -> spacy.Language:
    """spaCy's blank Vietnamese pipeline: pyvi word segmentation."""
    return spacy.blank("vi")


def pyvi_align(doc: Doc, start: int, end: int, label: str = ""):
    """Strict alignment, as spaCy offers it for any tokenizer."""
    return doc.char_span(start, end, label=label)


TOKENIZERS: Dict[str, Tuple[Callable[[], spacy.Language], Callable, dict]] = {
    "syllable": (blank_nlp, vi_ie.align_char_span, SYLLABLE_TOKENIZER),
    "pyvi": (pyvi_nlp, pyvi_align, PYVI_TOKENIZER),
}


def tokenize_all(nlp: spacy.Language, records: Sequence[Record], name: str) -> Tuple[List[Doc], float]:
    """Docs of all records and the seconds the tokenizer took."""
    docs, seconds = [], 0.0
    for rec in tqdm(records, desc=f"tokenize ({name})", unit="doc", leave=False):
        start = time.perf_counter()
        docs.append(nlp.make_doc(rec.data["text"]))
        seconds += time.perf_counter() - start
    return docs, seconds


# ------------------------------------------------------------ alignment
def misalignment(records: Sequence[Record], docs: Sequence[Doc], align: Callable) -> Tuple[dict, List[dict]]:
    """Counts of annotated spans whose offsets don't fall on token boundaries,
    overall and per label, and the misaligned spans themselves."""
    totals: Counter = Counter()
    bad: Counter = Counter()
    misaligned: List[dict] = []
    for rec, doc in zip(records, docs):
        for span in rec.data["spans"]:
            totals[span["label"]] += 1
            if align(doc, span["start"], span["end"]) is None:
                bad[span["label"]] += 1
                misaligned.append(describe_misaligned(rec, doc, span))
    n_spans = sum(totals.values())
    summary = {
        "spans": n_spans,
        "misaligned": sum(bad.values()),
        "misaligned_share": round(sum(bad.values()) / n_spans, 4) if n_spans else 0.0,
        "per_label": {
            label: {"spans": totals[label], "misaligned": bad[label], "share": round(bad[label] / totals[label], 4)}
            for label in sorted(totals)
        },
    }
    return summary, misaligned


def describe_misaligned(rec: Record, doc: Doc, span: dict) -> dict:
    """The span and the tokens that overlap it (showing the cut)."""
    start, end = span["start"], span["end"]
    tokens = [t.text for t in doc if t.idx < end and t.idx + len(t.text) > start]
    return {"doc_id": rec.id, "label": span["label"], "text": rec.data["text"][start:end], "tokens": tokens}


def pick_examples(misaligned: List[dict], n: int = N_EXAMPLES) -> List[dict]:
    """Up to ``n`` examples, taking labels in turn so that each label shows."""
    by_label: Dict[str, List[dict]] = {}
    for item in misaligned:
        by_label.setdefault(item["label"], []).append(item)
    out: List[dict] = []
    while len(out) < n and any(by_label.values()):
        for label in sorted(by_label):
            if by_label[label] and len(out) < n:
                out.append(by_label[label].pop(0))
    return out


# ------------------------------------------------------------ training
def ner_docbin(records: Sequence[Record], docs: Sequence[Doc], align: Callable) -> Tuple[DocBin, int]:
    """Entity-annotated DocBin; entities that don't align are dropped and counted."""
    docbin = DocBin()
    dropped = 0
    for rec, doc in zip(records, docs):
        doc = doc.copy()
        ents = []
        for span in rec.data["spans"]:
            if span["label"] not in vi_ie.ENTITY_LABELS:
                continue
            aligned = align(doc, span["start"], span["end"], span["label"])
            if aligned is None:
                dropped += 1
            else:
                ents.append(aligned)
        doc.ents = spacy.util.filter_spans(ents)
        dropped += len(ents) - len(doc.ents)
        docbin.add(doc)
    return docbin, dropped


def ner_config(base_path: Path, tokenizer: dict, train: Path, dev: Path, steps: int) -> spacy.util.Config:
    """configs/default.cfg reduced to tok2vec + ner, with the given tokenizer."""
    config = spacy.util.load_config(base_path, interpolate=False)
    config["nlp"]["pipeline"] = ["tok2vec", "ner"]
    config["nlp"]["tokenizer"] = dict(tokenizer)
    config["components"] = {name: config["components"][name] for name in ("tok2vec", "ner")}
    config["initialize"]["components"] = {}
    config["paths"]["train"] = str(train)
    config["paths"]["dev"] = str(dev)
    training = config["training"]
    training["max_steps"] = steps
    training["eval_frequency"] = max(1, steps)
    training["annotating_components"] = []
    training["frozen_components"] = []
    training["score_weights"] = {"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None}
    training["logger"] = {"@loggers": "spacy.ConsoleLogger.v1", "progress_bar": False}
    return config.interpolate()


def train_ner(config: spacy.util.Config) -> spacy.Language:
    """Train in memory (nothing written) and return the last state."""
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    nlp = init_nlp(config)
    nlp, _ = train(nlp, None, stdout=sys.stdout, stderr=sys.stderr)
    return nlp


def score_by_offsets(nlp: spacy.Language, records: Sequence[Record]) -> dict:
    """Entity P/R/F by character offsets against all gold entities of the
    records (whitespace absorbed into tokens is not part of a prediction)."""
    micro = PRFScore()
    per_type: Dict[str, PRFScore] = {}
    texts = [rec.data["text"] for rec in records]
    for rec, doc in zip(records, nlp.pipe(texts, batch_size=16)):
        gold = {(s["start"], s["end"], s["label"]) for s in rec.data["spans"] if s["label"] in vi_ie.ENTITY_LABELS}
        pred = {vi_ie.visible_span(ent) + (ent.label_,) for ent in doc.ents}
        for label in vi_ie.ENTITY_LABELS:
            g = {k for k in gold if k[2] == label}
            p = {k for k in pred if k[2] == label}
            score = PRFScore(tp=len(g & p), fp=len(p - g), fn=len(g - p))
            per_type.setdefault(label, PRFScore()).__iadd__(score)
            micro += score
    return {
        "dev_ents_p": round(micro.precision, 4),
        "dev_ents_r": round(micro.recall, 4),
        "dev_ents_f": round(micro.fscore, 4),
        "dev_ents_per_type": {label: {k: round(v, 4) for k, v in s.to_dict().items()} for label, s in per_type.items()},
    }


def split_paths(paths: Sequence[Path]) -> Tuple[Optional[Path], Optional[Path]]:
    """The train and dev files among the corpus files, by name."""
    train = next((p for p in paths if p.name.startswith("train")), None)
    dev = next((p for p in paths if p.name.startswith("dev")), None)
    return train, dev


# ------------------------------------------------------------ CLI
def main(
    corpus: List[Path] = typer.Option(..., "--corpus", help="Corpus JSONL files (repeat the option); train*/dev* are used for training"),
    config: Path = typer.Option(Path("configs/default.cfg"), help="Pipeline config whose tok2vec/ner settings are used"),
    output: Path = typer.Option(Path("training/tokenization.json"), help="JSON results"),
    train_steps: int = typer.Option(400, min=1, help="Training steps of the NER-only pipeline per tokenizer"),
    skip_train: bool = typer.Option(False, "--skip-train", help="Only alignment and speed, no training"),
) -> None:
    """Misaligned annotated spans, tokenizer speed and (unless --skip-train)
    dev entity P/R/F of a briefly trained tok2vec + ner pipeline, for pyvi
    and for the project's syllable tokenizer."""
    files = {path: list(read_records(path)) for path in corpus}
    records = [rec for recs in files.values() for rec in recs]
    words = sum(len(rec.data["text"].split()) for rec in records)
    train_path, dev_path = split_paths(corpus)
    if not skip_train and (train_path is None or dev_path is None):
        msg.fail("Training needs a train*.jsonl and a dev*.jsonl among --corpus (or use --skip-train)", exits=1)
    result: dict = {"corpus": [str(p) for p in corpus], "documents": len(records), "words": words,
                    "train_steps": None if skip_train else train_steps}
    for name, (make_nlp, align, tokenizer_cfg) in TOKENIZERS.items():
        nlp = make_nlp()
        docs, seconds = tokenize_all(nlp, records, name)
        summary, misaligned = misalignment(records, docs, align)
        summary["words_per_second"] = round(words / seconds) if seconds else None
        summary["tokens"] = sum(len(doc) for doc in docs)
        summary["tokens_per_second"] = round(summary["tokens"] / seconds) if seconds else None
        if name == "pyvi":
            summary["examples"] = pick_examples(misaligned)
        msg.info(f"{name}: {summary['misaligned']} of {summary['spans']} spans misaligned "
                 f"({summary['misaligned_share']:.1%}); {summary['words_per_second']:,} words/s")
        if not skip_train:
            summary.update(train_and_score(name, nlp, align, tokenizer_cfg, files, train_path, dev_path, config, train_steps))
        result[name] = summary
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf8")
    print_tables(result, skip_train)
    msg.good(f"Wrote {output}")


def train_and_score(name, nlp, align, tokenizer_cfg, files, train_path, dev_path, config, steps) -> dict:
    """Build the NER DocBins with this tokenizer, train, score dev by offsets."""
    out: dict = {"dropped_entities": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for split, path in (("train", train_path), ("dev", dev_path)):
            recs = files[path]
            docs = [nlp.make_doc(rec.data["text"]) for rec in recs]
            docbin, dropped = ner_docbin(recs, docs, align)
            paths[split] = Path(tmp) / f"{split}.spacy"
            docbin.to_disk(paths[split])
            out["dropped_entities"][split] = dropped
        msg.divider(f"Training tok2vec + ner with the {name} tokenizer ({steps} steps; "
                    f"dropped entities: {out['dropped_entities']})")
        start = time.perf_counter()
        trained = train_ner(ner_config(config, tokenizer_cfg, paths["train"], paths["dev"], steps))
        out["train_seconds"] = round(time.perf_counter() - start, 1)
    out.update(score_by_offsets(trained, files[dev_path]))
    return out


def print_tables(result: dict, skip_train: bool) -> None:
    names = [n for n in TOKENIZERS if n in result]
    rows = [
        ("misaligned spans", *(f"{result[n]['misaligned']} / {result[n]['spans']}" for n in names)),
        ("misaligned share", *(f"{result[n]['misaligned_share']:.2%}" for n in names)),
    ]
    labels = sorted({label for n in names for label in result[n]["per_label"]})
    for label in labels:
        rows.append((f"  {label}", *(f"{result[n]['per_label'].get(label, {}).get('misaligned', 0)}" for n in names)))
    rows.append(("words/s (tokenizer alone)", *(f"{result[n]['words_per_second']:,}" for n in names)))
    rows.append(("tokens per 100 words", *(f"{100 * result[n]['tokens'] / result['words']:.0f}" for n in names)))
    if not skip_train:
        for key in ("dev_ents_p", "dev_ents_r", "dev_ents_f"):
            rows.append((f"{key} ({result['train_steps']} steps)", *(f"{result[n][key]:.3f}" for n in names)))
        rows.append(("dropped train/dev entities", *(f"{result[n]['dropped_entities']['train']}/{result[n]['dropped_entities']['dev']}" for n in names)))
    msg.table(rows, header=("", *names), divider=True)
    examples = result.get("pyvi", {}).get("examples", [])
    if examples:
        msg.text("Misaligned with pyvi (span -> overlapping pyvi tokens):")
        for ex in examples:
            msg.text(f"  {ex['label']:8} {ex['text']!r} -> {ex['tokens']}  ({ex['doc_id']})")


if __name__ == "__main__":
    typer.run(main)
