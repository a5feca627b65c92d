"""Corpus statistics: counts per label, relation, split, genre and province,
and the share of repeated sentences among written documents."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List

import typer
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import blank_nlp, load_corpus  # noqa: E402

TARGETS = {
    "OFFICE": 1000, "ROLE": 1000, "MANDATE": 1000, "PERSON": 500,
    "HOLDS": 150, "ROLE_IN": 150, "SERVES_AS": 150, "HAS_MANDATE": 150,
    "PART_OF": 100, "ESTABLISHES": 100,
}


def repeated_sentence_share(texts: List[str]) -> float:
    """Share of sentences (of 5+ tokens) whose text occurs more than once."""
    nlp = blank_nlp()
    counts: Counter = Counter()
    for text in texts:
        for sent in nlp.make_doc(text).sents:
            words = " ".join(t.text for t in sent if not t.is_space)
            if len(sent) >= 5:
                counts[words] += 1
    total = sum(counts.values())
    repeated = sum(n for n in counts.values() if n > 1)
    return repeated / total if total else 0.0


def compute_stats(splits: Dict[str, Path]) -> dict:
    stats: dict = {"splits": {}, "labels": Counter(), "relations": Counter(), "genre": Counter(),
                   "province": Counter(), "source": Counter(), "written_labels": Counter(),
                   "written_relations": Counter()}
    texts = []
    for name, path in splits.items():
        records = load_corpus([path])
        stats["splits"][name] = len(records)
        for rec in records:
            d = rec.data
            written = d["meta"]["source"] == "written"
            stats["genre"][d["meta"]["genre"]] += 1
            stats["province"][d["meta"]["province"]] += 1
            stats["source"][d["meta"]["source"]] += 1
            for span in d["spans"]:
                stats["labels"][span["label"]] += 1
                stats["written_labels"][span["label"]] += written
            for rel in d["relations"]:
                stats["relations"][rel["label"]] += 1
                stats["written_relations"][rel["label"]] += written
            if written:
                texts.append(d["text"])
    stats["repeated_sentence_share"] = round(repeated_sentence_share(texts), 4)
    stats["n_provinces"] = len(stats["province"])
    return stats


def main(
    corpus_dir: Path = typer.Argument(Path("corpus"), help="Folder with train/dev/test.jsonl"),
    output: Path = typer.Option(None, help="Write the stats as JSON here"),
) -> None:
    """Print corpus statistics and whether the size targets are met."""
    stats = compute_stats({n: corpus_dir / f"{n}.jsonl" for n in ("train", "dev", "test")})
    msg.table(stats["splits"], header=("split", "docs"), divider=True)
    rows = []
    for key, target in TARGETS.items():
        have = stats["written_labels"].get(key, stats["written_relations"].get(key, 0))
        rows.append((key, have, target, "ok" if have >= target else "BELOW"))
    msg.table(rows, header=("label/relation (written)", "count", "target", ""), divider=True)
    msg.table(sorted(stats["genre"].items()), header=("genre", "docs"), divider=True)
    msg.table(stats["province"].most_common(), header=("province", "docs"), divider=True)
    msg.info(f"{stats['n_provinces']} provinces/cities/ministries; repeated sentences: {stats['repeated_sentence_share']:.1%}")
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(stats, indent=2, ensure_ascii=False), encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
