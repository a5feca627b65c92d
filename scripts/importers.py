"""Convert annotation-tool exports (Label Studio, doccano, Prodigy) into corpus
documents, and corpus documents back into those formats.

Annotators work in whichever tool they have; the corpus has one format (see
the guideline's "File format"). Each ``from_*`` function turns one exported
task/line into a corpus document; each ``to_*`` function does the reverse, so
that corpus documents can be re-annotated in a tool and so that tests can
round-trip real documents. Offsets are taken as written: texts are never
tidied, and a span whose text does not match its offsets is an error, not a
guess. The CLI commands fill in missing meta fields from options, run every
guideline rule (``validate_records``) and write nothing if anything is wrong.

    python scripts/importers.py label-studio export.json corpus/imported/ls.jsonl --genre news --province "Long An"
    python scripts/importers.py doccano all.jsonl corpus/imported/doccano.jsonl
    python scripts/importers.py prodigy db-out.jsonl corpus/imported/prodigy.jsonl
"""
from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import typer
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CorpusError, Record, blank_nlp, read_records, validate_records, write_jsonl  # noqa: E402

import vi_ie  # noqa: E402  (on sys.path via corpus)

app = typer.Typer(help=__doc__.split("\n\n")[0], add_completion=False, no_args_is_help=True)

#: Meta fields every corpus document needs; the CLI fills them from options.
META_FIELDS = ("source", "genre", "province")


# ----------------------------------------------------------------- helpers
def _get(obj: Any, key: str, where: str, kind: type = None) -> Any:
    """``obj[key]``, or a ValueError naming the field ``where.key``."""
    name = f"{where}.{key}" if where else key
    if not isinstance(obj, dict):
        raise ValueError(f"field '{where or '(record)'}' is not an object")
    if key not in obj or obj[key] is None:
        raise ValueError(f"field '{name}' is missing")
    value = obj[key]
    if kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ValueError(f"field '{name}' is {value!r}, expected {kind.__name__}")
    return value


def _list(obj: dict, key: str, where: str = "", required: bool = True) -> list:
    """A list field; missing is an error when ``required``, else empty."""
    if not required and obj.get(key) is None:
        return []
    return _get(obj, key, where, list)


def _check_offsets(text: str, start: int, end: int, where: str, surface: Optional[str]) -> None:
    """Offsets inside the text, non-empty, and matching the exported surface."""
    if not 0 <= start < end <= len(text):
        raise ValueError(f"field '{where}' has offsets [{start}, {end}) outside the text (length {len(text)}) or empty")
    if surface is not None and text[start:end] != surface:
        raise ValueError(f"field '{where}.text' is {surface!r} but the text at [{start}, {end}) is {text[start:end]!r}")


def _meta(raw: Any, where: str = "meta") -> Dict[str, Any]:
    """The export's meta object (may be absent); the document id is not meta."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"field '{where}' is not an object")
    return {k: v for k, v in raw.items() if k != "id"}


def _doc_id(meta: Any, fallback_key: Any, prefix: str, fallback_field: str) -> str:
    """``meta.id`` when the export carries it, else ``<prefix>-<fallback>``."""
    if isinstance(meta, dict) and meta.get("id") not in (None, ""):
        return str(meta["id"])
    if fallback_key in (None, ""):
        raise ValueError(f"field 'meta.id' is missing and so is field '{fallback_field}' (needed for the document id)")
    return f"{prefix}-{fallback_key}"


def assemble(doc_id: str, text: str, meta: dict, spans: List[Tuple[Any, int, int, str]],
             relations: List[Tuple[Any, Any, str, str]]) -> dict:
    """A corpus document from tool spans ``(tool_id, start, end, label)`` and
    relations ``(head_tool_id, child_tool_id, label, where)``.

    Span ids become "s1", "s2", ... in order of (start, end, label), so that
    the same annotation gives the same ids whatever tool it came from."""
    ordered = sorted(spans, key=lambda s: (s[1], s[2], s[3]))
    new_ids: Dict[Any, str] = {}
    out_spans = []
    for n, (tool_id, start, end, label) in enumerate(ordered, start=1):
        new_ids[tool_id] = f"s{n}"
        out_spans.append({"id": f"s{n}", "start": start, "end": end, "label": label})
    out_rels = []
    for head, child, label, where in relations:
        for key, ref in (("head", head), ("child", child)):
            if ref not in new_ids:
                raise ValueError(f"field '{where}' ({key}) refers to {ref!r}, which is not a span of this record")
        out_rels.append({"head": new_ids[head], "child": new_ids[child], "label": label})
    return {"id": doc_id, "text": text, "meta": meta, "spans": out_spans, "relations": out_rels}


def _sorted_spans(doc: dict) -> List[dict]:
    """The document's spans in (start, end, label) order, fields checked."""
    spans = _list(doc, "spans")
    for k, span in enumerate(spans):
        for key, kind in (("id", str), ("start", int), ("end", int), ("label", str)):
            _get(span, key, f"spans[{k}]", kind)
    return sorted(spans, key=lambda s: (s["start"], s["end"], s["label"]))


def _export_meta(doc: dict) -> dict:
    """Meta for an export: the corpus meta plus the document id."""
    meta = dict(doc.get("meta") or {})
    meta["id"] = _get(doc, "id", "", str)
    return meta


def _checked_relations(doc: dict, span_ids: set) -> List[dict]:
    rels = _list(doc, "relations")
    for k, rel in enumerate(rels):
        for key in ("head", "child", "label"):
            _get(rel, key, f"relations[{k}]", str)
        for key in ("head", "child"):
            if rel[key] not in span_ids:
                raise ValueError(f"field 'relations[{k}].{key}' refers to {rel[key]!r}, which is not a span of this document")
    return rels


# ------------------------------------------------------------ Label Studio
def from_label_studio(task: dict) -> dict:
    """One Label Studio task (JSON export) as a corpus document.

    Uses the first annotation. "labels" results become spans (exactly one
    label each), "relation" results become relations (one per label;
    direction "left" swaps head and child). ``value.text`` must equal the
    text at the offsets: Label Studio counts UTF-16 units, so a mismatch
    means the offsets cannot be trusted."""
    data = _get(task, "data", "", dict)
    text = _get(data, "text", "data", str)
    meta = data.get("meta")
    doc_id = _doc_id(meta, task.get("id"), "label-studio", "id")
    annotations = _list(task, "annotations")
    if not annotations:
        raise ValueError("field 'annotations' is empty: the task has no annotation")
    results = _list(annotations[0], "result", "annotations[0]")
    spans, rel_items = [], []
    for k, item in enumerate(results):
        where = f"annotations[0].result[{k}]"
        kind = _get(item, "type", where, str)
        if kind == "labels":
            tool_id = _get(item, "id", where)
            value = _get(item, "value", where, dict)
            start = _get(value, "start", f"{where}.value", int)
            end = _get(value, "end", f"{where}.value", int)
            labels = _get(value, "labels", f"{where}.value", list)
            if len(labels) != 1 or not isinstance(labels[0], str):
                raise ValueError(f"field '{where}.value.labels' is {labels!r}, expected exactly one label")
            _check_offsets(text, start, end, f"{where}.value", value.get("text"))
            spans.append((tool_id, start, end, labels[0]))
        elif kind == "relation":
            head, child = _get(item, "from_id", where), _get(item, "to_id", where)
            direction = item.get("direction", "right")
            if direction == "left":
                head, child = child, head
            elif direction != "right":
                raise ValueError(f"field '{where}.direction' is {direction!r}, expected 'right' or 'left'")
            labels = _get(item, "labels", where, list)
            if not labels:
                raise ValueError(f"field '{where}.labels' is empty: a relation needs a label")
            for label in labels:
                rel_items.append((head, child, label, f"{where}.from_id/to_id"))
        else:
            raise ValueError(f"field '{where}.type' is {kind!r}, expected 'labels' or 'relation'")
    ids = [s[0] for s in spans]
    if len(set(ids)) != len(ids):
        raise ValueError("field 'annotations[0].result[].id' repeats a span id")
    return assemble(doc_id, text, _meta(meta, "data.meta"), spans, rel_items)


def to_label_studio(doc: dict) -> dict:
    """A corpus document as a Label Studio task with one annotation (the
    document id travels in ``data.meta.id``)."""
    text = _get(doc, "text", "", str)
    spans = _sorted_spans(doc)
    result = []
    for span in spans:
        _check_offsets(text, span["start"], span["end"], f"spans[{span['id']}]", None)
        result.append({"id": span["id"], "from_name": "label", "to_name": "text", "type": "labels",
                       "value": {"start": span["start"], "end": span["end"],
                                 "text": text[span["start"]:span["end"]], "labels": [span["label"]]}})
    for rel in _checked_relations(doc, {s["id"] for s in spans}):
        result.append({"from_id": rel["head"], "to_id": rel["child"], "type": "relation",
                       "direction": "right", "labels": [rel["label"]]})
    return {"data": {"text": text, "meta": _export_meta(doc)}, "annotations": [{"result": result}]}


# ----------------------------------------------------------------- doccano
def from_doccano(line: dict) -> dict:
    """One line of a doccano relation-project export as a corpus document."""
    text = _get(line, "text", "", str)
    meta = line.get("meta")
    doc_id = _doc_id(meta, line.get("id"), "doccano", "id")
    spans = []
    for k, ent in enumerate(_list(line, "entities")):
        where = f"entities[{k}]"
        start = _get(ent, "start_offset", where, int)
        end = _get(ent, "end_offset", where, int)
        _check_offsets(text, start, end, where, ent.get("text"))
        spans.append((_get(ent, "id", where), start, end, _get(ent, "label", where, str)))
    ids = [s[0] for s in spans]
    if len(set(ids)) != len(ids):
        raise ValueError("field 'entities[].id' repeats an entity id")
    rels = []
    for k, rel in enumerate(_list(line, "relations", required=False)):
        where = f"relations[{k}]"
        rels.append((_get(rel, "from_id", where), _get(rel, "to_id", where), _get(rel, "type", where, str),
                     f"{where}.from_id/to_id"))
    return assemble(doc_id, text, _meta(meta), spans, rels)


def to_doccano(doc: dict) -> dict:
    """A corpus document as a doccano relation-project line (entity ids are
    1, 2, ... in span order; the document id travels in ``meta.id``)."""
    text = _get(doc, "text", "", str)
    spans = _sorted_spans(doc)
    numbers = {span["id"]: n for n, span in enumerate(spans, start=1)}
    entities = [{"id": numbers[s["id"]], "label": s["label"], "start_offset": s["start"], "end_offset": s["end"]}
                for s in spans]
    relations = [{"id": n, "from_id": numbers[r["head"]], "to_id": numbers[r["child"]], "type": r["label"]}
                 for n, r in enumerate(_checked_relations(doc, set(numbers)), start=1)]
    return {"text": text, "entities": entities, "relations": relations, "meta": _export_meta(doc)}


# ----------------------------------------------------------------- Prodigy
def from_prodigy(line: dict) -> dict:
    """One Prodigy example (spans, and relations from ``rel.manual``) as a
    corpus document. Relations are matched to spans by the character offsets
    (and label, when given) of ``head_span``/``child_span``; token indices
    are not used, since they depend on the tokenizer Prodigy ran."""
    text = _get(line, "text", "", str)
    meta = line.get("meta")
    doc_id = _doc_id(meta, line.get("_input_hash"), "prodigy", "_input_hash")
    spans = []
    for k, span in enumerate(_list(line, "spans", required=False)):
        where = f"spans[{k}]"
        start, end = _get(span, "start", where, int), _get(span, "end", where, int)
        _check_offsets(text, start, end, where, span.get("text"))
        spans.append((k, start, end, _get(span, "label", where, str)))
    rels = []
    for k, rel in enumerate(_list(line, "relations", required=False)):
        where = f"relations[{k}]"
        label = _get(rel, "label", where, str)
        ends = []
        for key in ("head_span", "child_span"):
            ref = _get(rel, key, where, dict)
            start, end = _get(ref, "start", f"{where}.{key}", int), _get(ref, "end", f"{where}.{key}", int)
            matches = [s[0] for s in spans if s[1] == start and s[2] == end
                       and ("label" not in ref or s[3] == ref["label"])]
            if len(matches) != 1:
                what = "no span" if not matches else "more than one span"
                raise ValueError(f"field '{where}.{key}' ({start}, {end}, {ref.get('label')!r}) matches {what} of this record")
            ends.append(matches[0])
        rels.append((ends[0], ends[1], label, where))
    return assemble(doc_id, text, _meta(meta), spans, rels)


@lru_cache(maxsize=1)
def _tokenizer_nlp():
    return blank_nlp()


def to_prodigy(doc: dict) -> dict:
    """A corpus document as a Prodigy example for ``rel.manual``: tokens from
    the project's tokenizer, spans with token indices, relations from the
    last token of each span (the document id travels in ``meta.id``)."""
    text = _get(doc, "text", "", str)
    spans = _sorted_spans(doc)
    tokens_doc = _tokenizer_nlp().make_doc(text)
    tokens = [{"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
              for t in tokens_doc]
    out_spans: Dict[str, dict] = {}
    for span in spans:
        _check_offsets(text, span["start"], span["end"], f"spans[{span['id']}]", None)
        aligned = vi_ie.align_char_span(tokens_doc, span["start"], span["end"])
        if aligned is None:
            raise ValueError(f"field 'spans[{span['id']}]' does not align with the tokenizer's tokens")
        out_spans[span["id"]] = {"start": span["start"], "end": span["end"], "label": span["label"],
                                 "token_start": aligned.start, "token_end": aligned.end - 1}
    relations = []
    for rel in _checked_relations(doc, set(out_spans)):
        head, child = out_spans[rel["head"]], out_spans[rel["child"]]
        relations.append({"head": head["token_end"], "child": child["token_end"], "label": rel["label"],
                          "head_span": dict(head), "child_span": dict(child)})
    return {"text": text, "tokens": tokens, "spans": list(out_spans.values()), "relations": relations,
            "meta": _export_meta(doc), "answer": "accept"}


# --------------------------------------------------------------------- CLI
def fill_meta(doc: dict, defaults: Dict[str, Optional[str]]) -> dict:
    """Fill meta fields the export lacks from the CLI options; a field that
    is in neither raises ValueError naming it."""
    meta = dict(doc["meta"])
    for key in META_FIELDS:
        if meta.get(key) in (None, ""):
            if not defaults.get(key):
                raise ValueError(f"field 'meta.{key}' is missing from the export and --{key} was not given")
            meta[key] = defaults[key]
    return {**doc, "meta": meta}


def _json_lines(path: Path) -> Iterator[Tuple[int, dict]]:
    try:
        for rec in read_records(path):
            yield rec.line, rec.data
    except CorpusError as err:
        raise ValueError(str(err)) from None


def _label_studio_tasks(path: Path) -> Iterator[Tuple[int, dict]]:
    """Tasks of a Label Studio JSON export, numbered from 1 ("task N")."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: malformed JSON: {err.msg}") from None
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}")
    for n, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise ValueError(f"{path}: task {n} is not an object")
        yield n, task


def _record_name(data: dict) -> str:
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    if not meta and isinstance(data.get("data"), dict):
        meta = data["data"].get("meta") if isinstance(data["data"].get("meta"), dict) else {}
    name = meta.get("id") or data.get("id") or data.get("_input_hash")
    return f" (record {name})" if name not in (None, "") else ""


def convert_file(path: Path, items: Iterator[Tuple[int, dict]], convert: Callable[[dict], dict],
                 defaults: Dict[str, Optional[str]], unit: str = "line") -> Tuple[List[Record], List[str]]:
    """Convert every record; return the documents and the errors, each error
    naming the file, the line (or task number) and the record."""
    records, errors = [], []
    for number, data in items:
        if data.get("answer") in ("reject", "ignore"):
            errors.append(f"{path} {unit} {number}{_record_name(data)}: answer is {data['answer']!r}; "
                          "remove rejected/ignored examples from the export before importing")
            continue
        try:
            records.append(Record(str(path), number, fill_meta(convert(data), defaults)))
        except ValueError as err:
            errors.append(f"{path} {unit} {number}{_record_name(data)}: {err}")
    return records, errors


def run_import(input_path: Path, output_path: Path, items: Callable[[Path], Iterator[Tuple[int, dict]]],
               convert: Callable[[dict], dict], defaults: Dict[str, Optional[str]], unit: str = "line") -> None:
    """Convert, validate against every guideline rule, and write only if
    nothing is wrong (exit 1 listing the problems otherwise)."""
    if not input_path.exists():
        msg.fail(f"Input file not found: {input_path}", exits=1)
    try:
        records, errors = convert_file(input_path, items(input_path), convert, defaults, unit)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    errors += [str(p) for p in validate_records(records)]
    if errors:
        msg.fail(f"{len(errors)} problem(s) in {input_path}; nothing written")
        for error in errors:
            print(error)
        raise typer.Exit(1)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    count = write_jsonl(output_path, (rec.data for rec in records))
    msg.good(f"Wrote {count} document(s) to {output_path}")


SOURCE = typer.Option("written", "--source", help="meta.source where the export has none (written|generated)")
GENRE = typer.Option(None, "--genre", help="meta.genre where the export has none (news|decision|announcement)")
PROVINCE = typer.Option(None, "--province", help="meta.province where the export has none")


@app.command("label-studio")
def label_studio_cmd(
    input_path: Path = typer.Argument(..., help="Label Studio JSON export (a list of tasks)"),
    output_path: Path = typer.Argument(..., help="Corpus JSONL to write, e.g. corpus/imported/ls.jsonl"),
    source: str = SOURCE, genre: Optional[str] = GENRE, province: Optional[str] = PROVINCE,
) -> None:
    """Import a Label Studio JSON export."""
    run_import(input_path, output_path, _label_studio_tasks, from_label_studio,
               {"source": source, "genre": genre, "province": province}, unit="task")


@app.command("doccano")
def doccano_cmd(
    input_path: Path = typer.Argument(..., help="doccano relation-project JSONL export"),
    output_path: Path = typer.Argument(..., help="Corpus JSONL to write"),
    source: str = SOURCE, genre: Optional[str] = GENRE, province: Optional[str] = PROVINCE,
) -> None:
    """Import a doccano JSONL export."""
    run_import(input_path, output_path, _json_lines, from_doccano,
               {"source": source, "genre": genre, "province": province})


@app.command("prodigy")
def prodigy_cmd(
    input_path: Path = typer.Argument(..., help="Prodigy JSONL (db-out) with spans and relations"),
    output_path: Path = typer.Argument(..., help="Corpus JSONL to write"),
    source: str = SOURCE, genre: Optional[str] = GENRE, province: Optional[str] = PROVINCE,
) -> None:
    """Import a Prodigy JSONL export."""
    run_import(input_path, output_path, _json_lines, from_prodigy,
               {"source": source, "genre": genre, "province": province})


if __name__ == "__main__":
    app()
