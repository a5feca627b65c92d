"""Annotation consistency report: the same surface string annotated
differently, or annotated in one place and missed in another.

Two lists, for a reviewer to go through (nothing is changed, exit 0):

(a) label conflicts: a surface string (NFC, whitespace collapsed, compared
    case-sensitively) that carries more than one label across the corpus;
(b) missed occurrences: an OFFICE, PERSON or ROLE surface string that occurs
    elsewhere (on word boundaries, any whitespace between its words) without
    a span of that label covering the occurrence.

    python scripts/consistency.py corpus/train.jsonl corpus/dev.jsonl corpus/test.jsonl --output training/consistency.md
"""
from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import typer
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CorpusError, Record, load_corpus  # noqa: E402

#: Labels checked for missed occurrences (MANDATE spans are clauses, whose
#: exact repetition says little about a missed annotation).
MISSABLE_LABELS = ("OFFICE", "PERSON", "ROLE")
MAX_EXAMPLES = 5


def canonical_surface(text: str) -> str:
    """NFC with every whitespace run (no-break spaces, line breaks) as one
    space: the key under which two spans count as the same string."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def surface_pattern(surface: str) -> "re.Pattern[str]":
    """A regex for the surface on word boundaries, any whitespace between words."""
    words = [re.escape(w) for w in surface.split(" ")]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


@dataclass
class Conflict:
    """A surface string with more than one label."""

    surface: str
    labels: Counter = field(default_factory=Counter)
    docs: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def total(self) -> int:
        return sum(self.labels.values())


@dataclass
class Miss:
    """An annotated surface string and its unannotated occurrences."""

    surface: str
    label: str
    annotated: int
    annotated_docs: List[str]
    locations: List[Tuple[str, int]]


def label_conflicts(docs: Sequence[dict]) -> List[Conflict]:
    """Surfaces labelled differently, most frequent first."""
    by_surface: Dict[str, Conflict] = {}
    for doc in docs:
        for span in doc["spans"]:
            surface = canonical_surface(doc["text"][span["start"]:span["end"]])
            entry = by_surface.setdefault(surface, Conflict(surface))
            entry.labels[span["label"]] += 1
            if doc["id"] not in entry.docs[span["label"]]:
                entry.docs[span["label"]].append(doc["id"])
    conflicts = [c for c in by_surface.values() if len(c.labels) > 1]
    return sorted(conflicts, key=lambda c: (-c.total, c.surface))


def word_index(docs: Sequence[dict]) -> Dict[str, List[Tuple[int, int]]]:
    """Where each word (a maximal run of word characters) starts: word ->
    [(document position, offset)]. Lets the search try a surface only where
    its first word stands, instead of scanning every text for every string."""
    index: Dict[str, List[Tuple[int, int]]] = defaultdict(list)
    for k, doc in enumerate(docs):
        for match in re.finditer(r"\w+", doc["text"]):
            index[match.group(0)].append((k, match.start()))
    return index


def missed_occurrences(docs: Sequence[dict], labels: Sequence[str] = MISSABLE_LABELS) -> List[Miss]:
    """Annotated surfaces with occurrences not covered by a span of the same
    label, most missed first.

    An occurrence counts as covered when a span of that label contains it
    (so "Sở Y tế" inside an OFFICE "Sở Y tế tỉnh X" is not a miss). Every
    document is searched, including the one where the string is annotated:
    an unannotated repeat there is as suspicious as one elsewhere."""
    annotated: Dict[Tuple[str, str], List[str]] = defaultdict(list)
    covering: Dict[Tuple[str, str], List[Tuple[int, int]]] = defaultdict(list)
    for doc in docs:
        for span in doc["spans"]:
            if span["label"] not in labels:
                continue
            surface = canonical_surface(doc["text"][span["start"]:span["end"]])
            annotated[(surface, span["label"])].append(doc["id"])
            covering[(doc["id"], span["label"])].append((span["start"], span["end"]))
    index = word_index(docs)
    misses = []
    for (surface, label), doc_ids in annotated.items():
        pattern = surface_pattern(surface)
        first = re.match(r"\w+", surface)
        if first:
            candidates = index.get(first.group(0), [])
        else:  # no leading word: scan every position of every document
            candidates = [(k, m.start()) for k, doc in enumerate(docs) for m in pattern.finditer(doc["text"])]
        locations = []
        for k, start in candidates:
            doc = docs[k]
            match = pattern.match(doc["text"], start)
            if match is None:
                continue
            spans = covering.get((doc["id"], label), ())
            if not any(s <= match.start() and match.end() <= e for s, e in spans):
                locations.append((doc["id"], match.start()))
        if locations:
            misses.append(Miss(surface, label, len(doc_ids), sorted(set(doc_ids)), locations))
    return sorted(misses, key=lambda m: (-len(m.locations), -m.annotated, m.surface, m.label))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_EXAMPLES])
    return shown + (f", … (+{len(items) - MAX_EXAMPLES})" if len(items) > MAX_EXAMPLES else "")


def render_markdown(paths: Sequence[Path], n_docs: int, conflicts: List[Conflict], misses: List[Miss], top: int) -> str:
    """The report as Markdown, each list capped at ``top`` rows."""
    lines = [
        "# Annotation consistency report", "",
        f"Files: {', '.join(str(p) for p in paths)} ({n_docs} documents).",
        "Surface strings are compared after NFC and whitespace collapsing, case-sensitively.", "",
        f"## Label conflicts ({len(conflicts)} surface strings, top {min(top, len(conflicts))})", "",
        "The same string annotated with different labels. Check each against the guideline.", "",
        "| surface | total | per label | example documents |", "|---|---|---|---|",
    ]
    for c in conflicts[:top]:
        per_label = ", ".join(f"{label} {n}" for label, n in c.labels.most_common())
        examples = "; ".join(f"{label}: {_examples(c.docs[label])}" for label, _ in c.labels.most_common())
        lines.append(f"| {_cell(c.surface)} | {c.total} | {per_label} | {_cell(examples)} |")
    lines += [
        "", f"## Missed occurrences ({len(misses)} surface strings, top {min(top, len(misses))})", "",
        "Strings annotated as OFFICE, PERSON or ROLE somewhere, found on word boundaries "
        "where no span of that label covers them. Locations are `doc id@character offset`.", "",
        "| label | surface | annotated (docs) | unannotated | example locations |", "|---|---|---|---|---|",
    ]
    for m in misses[:top]:
        locations = [f"`{doc_id}@{offset}`" for doc_id, offset in m.locations]
        lines.append(f"| {m.label} | {_cell(m.surface)} | {m.annotated} ({_cell(_examples(m.annotated_docs))}) "
                     f"| {len(m.locations)} | {_cell(_examples(locations))} |")
    return "\n".join(lines) + "\n"


def main(
    inputs: List[Path] = typer.Argument(..., help="Corpus JSONL files (train, dev, test)"),
    output: Path = typer.Option(Path("training/consistency.md"), "--output", "-o", help="Markdown report to write"),
    top: int = typer.Option(50, "--top", min=1, help="Rows kept in each list"),
) -> None:
    """Write the consistency report; findings are for review, so exit 0."""
    for path in inputs:
        if not path.exists():
            msg.fail(f"Input file not found: {path}", exits=1)
    try:
        records: List[Record] = load_corpus(inputs)
    except CorpusError as err:
        msg.fail(f"{len(err.problems)} problem(s) in the input; fix them first (scripts/corpus.py rules)")
        for problem in err.problems:
            print(problem)
        raise typer.Exit(1)
    docs = [rec.data for rec in records]
    conflicts = label_conflicts(docs)
    misses = missed_occurrences(docs)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_markdown(inputs, len(docs), conflicts, misses, top), encoding="utf8")
    msg.info(f"{len(docs)} documents")
    msg.text(f"Label conflicts: {len(conflicts)} surface strings")
    for c in conflicts[:5]:
        msg.text(f"  {c.surface!r}: " + ", ".join(f"{label} {n}" for label, n in c.labels.most_common()))
    msg.text(f"Missed occurrences: {len(misses)} surface strings, {sum(len(m.locations) for m in misses)} occurrences")
    for m in misses[:5]:
        msg.text(f"  {m.label} {m.surface!r}: annotated {m.annotated}, unannotated {len(m.locations)}")
    msg.good(f"Wrote {output}")


if __name__ == "__main__":
    typer.run(main)
