"""Build the corpus JSONL splits from the authoring sources.

Sources: the markup files in ``corpus/src/`` and any JSONL in
``corpus/imported/`` (written by the importers). The split of each document
is fixed in ``corpus/splits.json``; a document not listed there is assigned
once (written documents: every 20 documents give 3 to dev and 3 to test in
source order; generated documents: always train) and the assignment is
saved, so a document never moves between splits.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

import typer
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CorpusError, Record, exit_on_problems, read_records, validate_records, write_jsonl  # noqa: E402
from import_markup import parse_markup  # noqa: E402

SPLITS = ("train", "dev", "test")


def assign_split(position: int, record: Record) -> str:
    """Initial split of a new document from its position among new written ones."""
    if record.data["meta"]["source"] != "written":
        return "train"
    slot = position % 20
    if slot in (2, 9, 16):
        return "dev"
    if slot in (5, 12, 19):
        return "test"
    return "train"


def main(
    src_dir: Path = typer.Option(Path("corpus/src"), help="Markup sources"),
    imported_dir: Path = typer.Option(Path("corpus/imported"), help="Imported JSONL documents"),
    splits_path: Path = typer.Option(Path("corpus/splits.json"), help="Fixed split of every document id"),
    output_dir: Path = typer.Option(Path("corpus"), help="Where train/dev/test.jsonl go"),
) -> None:
    """Compile, validate and split the corpus; exit 1 on any problem."""
    records: List[Record] = []
    try:
        for path in sorted(src_dir.glob("*.txt")):
            records.extend(parse_markup(path))
        for path in sorted(imported_dir.glob("*.jsonl")):
            records.extend(read_records(path))
    except CorpusError as err:
        exit_on_problems(err.problems)
    exit_on_problems(validate_records(records), len(records))
    splits: Dict[str, str] = json.loads(splits_path.read_text()) if splits_path.exists() else {}
    new = [r for r in records if r.id not in splits]
    for position, rec in enumerate(new):
        splits[rec.id] = assign_split(position, rec)
    for name in SPLITS:
        rows = [r.data for r in records if splits[r.id] == name]
        count = write_jsonl(output_dir / f"{name}.jsonl", rows)
        msg.good(f"{name}: {count} documents -> {output_dir / f'{name}.jsonl'}")
    known = {r.id for r in records}
    splits = {k: v for k, v in sorted(splits.items()) if k in known}
    splits_path.write_text(json.dumps(splits, indent=1, ensure_ascii=False) + "\n", encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
