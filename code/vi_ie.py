"""Custom pipeline code for vi_decision_ie.

One importable module shared by ``spacy train --code`` and ``spacy package
--code`` so that the packaged wheel needs nothing from the checkout. It holds:

* text canonicalisation (NFC/NFD, both tone-mark conventions, U+00D0 "Ð",
  zero-width and no-break spaces, CRLF, HTML remnants) used for token norms
  and lexical features, never for the text the caller gets back;
* a rule-based syllable tokenizer that also marks sentence starts with the
  annotation guideline's sentence rule;
* the relation schema (labels and allowed argument types);
* the trainable ``relation_extractor`` component, its model architecture and
  its scorer (``doc._.relations``);
* ``mandate_spans``, which decodes the ``mandate_tagger``'s BIO tags into
  ``doc.spans["mandates"]`` clause by clause;
* ``chunked_tok2vec``, spaCy's tok2vec run in overlapping windows on long
  documents so memory stays bounded.
"""
from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy
import spacy
import srsly
from spacy.attrs import IS_SPACE, LOWER, NORM, PREFIX, SHAPE, SUFFIX
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy.vocab import Vocab

# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------
OFFICE, PERSON, ROLE, MANDATE = "OFFICE", "PERSON", "ROLE", "MANDATE"
ENTITY_LABELS: Tuple[str, ...] = (OFFICE, PERSON, ROLE)
SPAN_LABELS: Tuple[str, ...] = (OFFICE, PERSON, ROLE, MANDATE)
MANDATES_KEY = "mandates"
REL_LABELS: Tuple[str, ...] = (
    "HOLDS", "ROLE_IN", "SERVES_AS", "HAS_MANDATE", "PART_OF", "ESTABLISHES",
)
#: relation label -> (allowed head labels, allowed child labels)
REL_SIGNATURES: Dict[str, Tuple[frozenset, frozenset]] = {
    "HOLDS": (frozenset({PERSON, OFFICE}), frozenset({ROLE})),
    "ROLE_IN": (frozenset({ROLE}), frozenset({OFFICE})),
    "SERVES_AS": (frozenset({ROLE}), frozenset({ROLE})),
    "HAS_MANDATE": (frozenset({OFFICE, ROLE, PERSON}), frozenset({MANDATE})),
    "PART_OF": (frozenset({OFFICE}), frozenset({OFFICE})),
    "ESTABLISHES": (frozenset({OFFICE, ROLE, PERSON}), frozenset({OFFICE})),
}


def allowed_labels(head_label: str, child_label: str) -> List[str]:
    """Relation labels the guideline allows from ``head_label`` to ``child_label``."""
    return [
        rel for rel, (heads, children) in REL_SIGNATURES.items()
        if head_label in heads and child_label in children
    ]


#: Longest text (characters) the pipeline accepts by default.
MAX_LENGTH = 2_000_000
#: A "." after these words does not end a sentence (guideline, Relations).
SENTENCE_ABBREVIATIONS = frozenset({"TP", "Tp", "TS", "ThS", "PGS", "GS"})

# --------------------------------------------------------------------------
# Canonicalisation
# --------------------------------------------------------------------------
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
LINE_BREAKS = "\n\r\u2028\u2029\x0b\x0c\x85"
_TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
_VOWELS = set("aeiouyăâêôơưAEIOUYĂÂÊÔƠƯ")
_QUALITY_VOWELS = set("ăâêôơưĂÂÊÔƠƯ")
_LOOKALIKES = str.maketrans({"\u00d0": "\u0110", "\u00f0": "\u0111", "\u0189": "\u0110"})
_BLOCK_TAGS = re.compile(r"(?i)^</?(br|p|div|li|ul|ol|tr|table|h[1-6])\b")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>\n]{0,80}>")
_HTML_ENTITY = re.compile(r"&(#\d{1,6}|#x[0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});")


def _canonical_syllable(syllable: str) -> str:
    """Move a syllable's tone mark onto one fixed vowel so that both
    conventions ("hoà"/"hòa", "thuỷ"/"thủy") give the same string."""
    decomposed = unicodedata.normalize("NFD", syllable)
    tones = [c for c in decomposed if c in _TONES]
    if not tones:
        return unicodedata.normalize("NFC", decomposed)
    base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONES))
    vowel_positions = [i for i, c in enumerate(base) if c in _VOWELS]
    if not vowel_positions:
        return unicodedata.normalize("NFC", base + tones[-1])
    quality = [i for i in vowel_positions if base[i] in _QUALITY_VOWELS]
    target = quality[-1] if quality else vowel_positions[-1]
    marked = base[: target + 1] + tones[-1] + base[target + 1:]
    return unicodedata.normalize("NFC", marked)


_SYLLABLE = re.compile(r"[^\W\d_][\w\u0300-\u036f]*", re.UNICODE)


@lru_cache(maxsize=200_000)
def canonical(text: str) -> str:
    """The form the model sees for ``text``: NFC, one tone-mark convention,
    "Đ" for its look-alikes, HTML entities decoded, tags, zero-width and
    no-break spaces removed or turned into plain whitespace, CRLF as LF.

    Pure function of the string, so lexical features computed from it are the
    same for every spelling variant of a token."""
    text = _HTML_TAG.sub(lambda m: "\n" if _BLOCK_TAGS.match(m.group(0)) else "", text)
    text = html.unescape(text) if "&" in text else text
    text = text.translate(_LOOKALIKES)
    text = "".join(c for c in text if c not in ZERO_WIDTH)
    text = text.replace("\r\n", "\n")
    text = "".join(
        "\n" if c in LINE_BREAKS else (" " if c.isspace() else c) for c in text
    )
    text = unicodedata.normalize("NFC", text)
    return _SYLLABLE.sub(lambda m: _canonical_syllable(m.group(0)), text)


def canonical_token(text: str) -> str:
    """Canonical form of one token: whitespace absorbed into it is dropped,
    but a token that is only line breaks stays a line break."""
    form = canonical(text)
    stripped = form.strip()
    if stripped:
        return stripped
    return "\n" if "\n" in form else " "


def _shape(text: str) -> str:
    shape = []
    last, count = "", 0
    for char in text:
        if char.isalpha():
            kind = "X" if char.isupper() else "x"
        elif char.isdigit():
            kind = "d"
        else:
            kind = char
        if kind == last:
            count += 1
        else:
            count = 0
            last = kind
        if count < 4:
            shape.append(kind)
    return "".join(shape)


def canonical_lex_attr_getters() -> Dict[int, Callable[[str], object]]:
    """Lexical attribute getters computed from the canonical form, so that
    NORM, PREFIX, SUFFIX and SHAPE (the tok2vec features) are identical for
    NFC/NFD, either tone convention and absorbed invisible characters."""
    return {
        NORM: lambda s: canonical_token(s).lower(),
        LOWER: lambda s: canonical_token(s).lower(),
        PREFIX: lambda s: canonical_token(s)[:1],
        SUFFIX: lambda s: canonical_token(s)[-3:],
        SHAPE: lambda s: _shape(canonical_token(s)),
        IS_SPACE: lambda s: not canonical_token(s).strip(),
    }


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------
def _char_class(char: str) -> str:
    """'w' word character, 's' soft (absorbable) gap, 'n' line break, 'p' other."""
    if char in LINE_BREAKS:
        return "n"
    if char in ZERO_WIDTH or char.isspace():
        return "s"
    category = unicodedata.category(char)
    if category[0] in "LNM":
        return "w"
    if category == "Cf":
        return "s"
    return "p"


class _Piece:
    """A core token or a gap between tokens; a gap is hard when it breaks a line."""

    __slots__ = ("start", "end", "kind", "hard")

    def __init__(self, start: int, end: int, kind: str, hard: bool = False):
        self.start, self.end, self.kind, self.hard = start, end, kind, hard


def _scan(text: str) -> List[_Piece]:
    """Split ``text`` into core tokens (word runs, HTML entities, single
    punctuation marks) and the gaps between them."""
    pieces: List[_Piece] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "<":
            tag = _HTML_TAG.match(text, i)
            if tag:
                hard = bool(_BLOCK_TAGS.match(tag.group(0)))
                _add_gap(pieces, i, tag.end(), hard)
                i = tag.end()
                continue
        if char == "&":
            entity = _HTML_ENTITY.match(text, i)
            if entity and html.unescape(entity.group(0)) != entity.group(0):
                if html.unescape(entity.group(0)).isspace():
                    _add_gap(pieces, i, entity.end(), False)
                else:
                    pieces.append(_Piece(i, entity.end(), "core"))
                i = entity.end()
                continue
        kind = _char_class(char)
        if kind == "w":
            j = i + 1
            while j < n and _char_class(text[j]) == "w":
                j += 1
            pieces.append(_Piece(i, j, "core"))
            i = j
        elif kind in "sn":
            _add_gap(pieces, i, i + 1, kind == "n")
            i += 1
        else:
            pieces.append(_Piece(i, i + 1, "core"))
            i += 1
    return pieces


def _add_gap(pieces: List[_Piece], start: int, end: int, hard: bool) -> None:
    if pieces and pieces[-1].kind == "gap" and pieces[-1].end == start:
        pieces[-1].end = end
        pieces[-1].hard = pieces[-1].hard or hard
    else:
        pieces.append(_Piece(start, end, "gap", hard))


def _sentence_starts(words: Sequence[str], spaces: Sequence[bool]) -> List[bool]:
    """Guideline sentence rule on tokens: a sentence ends at a line break, or
    at ".", "!", "?", "…" followed by whitespace, unless the "." closes an
    abbreviation such as "TP"."""
    starts = [False] * len(words)
    if words:
        starts[0] = True
    forms = [canonical_token(w) for w in words]
    for i in range(len(words) - 1):
        form = forms[i]
        ends = False
        if not form.strip():
            ends = "\n" in form
        elif form in {".", "!", "?", "…"}:
            followed_by_space = spaces[i] or words[i] != form or not forms[i + 1].strip()
            after_abbrev = (
                form == "." and i > 0 and not spaces[i - 1]
                and words[i - 1] == forms[i - 1]
                and forms[i - 1] in SENTENCE_ABBREVIATIONS
            )
            ends = followed_by_space and not after_abbrev
        if ends:
            j = i + 1
            while j < len(words) and not forms[j].strip() and "\n" not in forms[j]:
                j += 1
            if j < len(words):
                starts[j] = True
    # A run of whitespace tokens belongs to the sentence before it.
    for i, form in enumerate(forms):
        if i > 0 and not form.strip() and starts[i]:
            starts[i] = False
            if i + 1 < len(words):
                starts[i + 1] = True
    return starts


class SyllableTokenizer:
    """Rule-based tokenizer: one token per syllable (run of letters, digits
    and combining marks), per punctuation mark, per HTML entity, and per run
    of whitespace that holds a line break. Other invisible characters
    (no-break and zero-width spaces, extra spaces, inline HTML tags) are
    absorbed into the token before them, so that spelling variants of a text
    give the same token sequence as the clean text. Sentence starts follow
    the annotation guideline."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        words, spaces = self.split(text)
        sent_starts = _sentence_starts(words, spaces)
        return Doc(self.vocab, words=words, spaces=spaces, sent_starts=sent_starts)

    @staticmethod
    def split(text: str) -> Tuple[List[str], List[bool]]:
        """Words and trailing-space flags; ``"".join`` of them is ``text``."""
        words: List[str] = []
        spaces: List[bool] = []
        prefix = ""  # a gap before the first token is absorbed into it
        pieces = _scan(text)
        for k, piece in enumerate(pieces):
            chunk = text[piece.start:piece.end]
            if piece.kind == "gap" and words and k == len(pieces) - 1:
                # a gap that ends the text is absorbed into the last token
                if spaces[-1]:
                    words[-1] += " "
                    spaces[-1] = False
                words[-1] += chunk
            elif piece.kind == "core":
                words.append(prefix + chunk)
                spaces.append(False)
                prefix = ""
            elif not words:
                prefix += chunk
            elif piece.hard:
                if chunk.startswith(" ") and not spaces[-1]:
                    spaces[-1] = True
                    chunk = chunk[1:]
                if chunk:
                    words.append(chunk)
                    spaces.append(False)
            elif chunk == " ":
                spaces[-1] = True
            elif chunk.endswith(" "):
                words[-1] += chunk[:-1]
                spaces[-1] = True
            else:
                words[-1] += chunk
        if prefix:
            words.append(prefix)
            spaces.append(False)
        return words, spaces

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterable[Doc]:
        for text in texts:
            yield self(text)

    def to_bytes(self, **kwargs) -> bytes:
        return b""

    def from_bytes(self, data: bytes, **kwargs) -> "SyllableTokenizer":
        return self

    def to_disk(self, path, **kwargs) -> None:
        pass

    def from_disk(self, path, **kwargs) -> "SyllableTokenizer":
        return self


@registry.tokenizers("vi_decision_ie.SyllableTokenizer.v1")
def create_syllable_tokenizer() -> Callable[[Language], SyllableTokenizer]:
    """Registered tokenizer factory. It also installs the canonical lexical
    attribute getters on the vocab, so the model's features see one spelling."""

    def make_tokenizer(nlp: Language) -> SyllableTokenizer:
        nlp.vocab.lex_attr_getters.update(canonical_lex_attr_getters())
        # spaCy's 1,000,000-character guard protects against components whose
        # memory grows faster than the text; every component here is linear
        # (chunked tok2vec, greedy NER, sentence-local relation candidates),
        # so a 1 MB notice is accepted as it is.
        nlp.max_length = max(nlp.max_length, MAX_LENGTH)
        return SyllableTokenizer(nlp.vocab)

    return make_tokenizer


def align_char_span(doc: Doc, start: int, end: int, label: str = "") -> Optional[Span]:
    """The token span for characters ``[start, end)``, or None.

    A boundary may fall inside a token only where the rest of that token is
    absorbed invisible text (a no-break space, a zero-width space), never
    inside a word."""
    span = doc.char_span(start, end, label=label)
    if span is not None:
        return span
    span = doc.char_span(start, end, label=label, alignment_mode="expand")
    if span is None:
        return None
    extra = doc.text[span.start_char:start] + doc.text[end:span.end_char]
    if canonical(extra).strip():
        return None
    return span


def visible_span(span: Span) -> Tuple[int, int]:
    """Character offsets of ``span`` without absorbed whitespace at its edges."""
    text = span.text
    start, end = span.start_char, span.end_char
    left = len(text) - len(text.lstrip(ZERO_WIDTH + " \u00a0\t" ))
    right = len(text) - len(text.rstrip(ZERO_WIDTH + " \u00a0\t"))
    return start + left, end - right


# --------------------------------------------------------------------------
# Relations: data on the Doc
# --------------------------------------------------------------------------
from thinc.api import Model, Optimizer, chain, Relu, Linear, Dropout  # noqa: E402
from thinc.types import Floats2d, Ints1d  # noqa: E402
from spacy.pipeline import TrainablePipe  # noqa: E402
from spacy.training import Example, validate_examples  # noqa: E402
from spacy.scorer import PRFScore  # noqa: E402
from spacy.errors import Errors  # noqa: E402

#: Doc.user_data key of the relations, stored as plain tuples so that docs
#: survive DocBin, pickle, to_bytes and nlp.pipe(n_process=2).
RELATIONS_KEY = "vi_decision_ie.relations"


class Relation(NamedTuple):
    """A relation between two spans of one doc."""

    head: Span
    child: Span
    label: str
    score: float

    def as_tuple(self) -> Tuple[int, int, str, int, int, str, str]:
        """Strict identity: both arguments' character offsets and labels."""
        return (
            self.head.start_char, self.head.end_char, self.head.label_,
            self.child.start_char, self.child.end_char, self.child.label_,
            self.label,
        )


def get_relations(doc: Doc) -> List[Relation]:
    """Getter of ``doc._.relations``: Relation objects built from user_data."""
    out = []
    for hs, he, hl, cs, ce, cl, label, score in doc.user_data.get(RELATIONS_KEY, []):
        out.append(Relation(Span(doc, hs, he, label=hl), Span(doc, cs, ce, label=cl), label, score))
    return out


def set_relations(doc: Doc, relations: Iterable[Tuple[Span, Span, str, float]]) -> None:
    """Store relations on ``doc`` (replacing any there)."""
    doc.user_data[RELATIONS_KEY] = [
        (h.start, h.end, h.label_, c.start, c.end, c.label_, label, float(score))
        for h, c, label, score in relations
    ]


if not Doc.has_extension("relations"):
    Doc.set_extension("relations", getter=get_relations)


# --------------------------------------------------------------------------
# Relations: candidates
# --------------------------------------------------------------------------
Candidate = Tuple[int, int, str, int, int, str]  # head start/end/label, child start/end/label
_DIST_BUCKETS = (0, 1, 2, 3, 4, 6, 9, 14, 22, 35, 60, 100)
_BETWEEN_BUCKETS = (0, 1, 2, 3, 5, 8)
_ARG_LABELS = SPAN_LABELS
N_PAIR_FEATURES = 2 * len(_ARG_LABELS) + 2 + len(_DIST_BUCKETS) + len(_BETWEEN_BUCKETS)


def argument_spans(doc: Doc) -> List[Span]:
    """Spans that can be relation arguments: entities and mandates."""
    spans = list(doc.ents) + list(doc.spans.get(MANDATES_KEY, []))
    seen, out = set(), []
    for span in spans:
        key = (span.start, span.end, span.label_)
        if span.label_ in SPAN_LABELS and key not in seen:
            seen.add(key)
            out.append(span)
    return sorted(out, key=lambda s: (s.start, s.end))


def make_candidates(doc: Doc, spans: Sequence[Span], max_distance: int) -> List[Candidate]:
    """Ordered pairs of spans in one sentence whose label pair the guideline
    allows for some relation, at most ``max_distance`` tokens apart.

    Spans are scanned in start order with a window, so the cost grows with
    the number of spans times the spans within reach, not quadratically."""
    if not spans:
        return []
    sent_index = numpy.cumsum([1 if tok.is_sent_start else 0 for tok in doc])
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    out: List[Candidate] = []
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            if second.start - first.end > max_distance:
                break
            if sent_index[first.start] != sent_index[second.start]:
                break
            if first.start == second.start and first.end == second.end:
                continue
            for head, child in ((first, second), (second, first)):
                if allowed_labels(head.label_, child.label_):
                    out.append((head.start, head.end, head.label_, child.start, child.end, child.label_))
    return out


def _bucket(value: int, buckets: Sequence[int]) -> int:
    index = 0
    for i, edge in enumerate(buckets):
        if value >= edge:
            index = i
    return index


def pair_features(doc: Doc, cands: Sequence[Candidate], starts: Sequence[int]) -> numpy.ndarray:
    """Type and geometry features of each candidate: argument labels, order,
    nesting, token distance and number of other arguments between them."""
    feats = numpy.zeros((len(cands), N_PAIR_FEATURES), dtype="float32")
    starts_arr = numpy.asarray(sorted(starts), dtype="int64")
    n = len(_ARG_LABELS)
    for i, (hs, he, hl, cs, ce, cl) in enumerate(cands):
        feats[i, _ARG_LABELS.index(hl)] = 1.0
        feats[i, n + _ARG_LABELS.index(cl)] = 1.0
        feats[i, 2 * n] = 1.0 if hs < cs else 0.0
        feats[i, 2 * n + 1] = 1.0 if (hs <= cs and ce <= he) or (cs <= hs and he <= ce) else 0.0
        lo, hi = min(he, ce), max(hs, cs)
        gap = max(0, hi - lo)
        feats[i, 2 * n + 2 + _bucket(gap, _DIST_BUCKETS)] = 1.0
        between = int(((starts_arr >= lo) & (starts_arr < hi)).sum()) if hi > lo else 0
        feats[i, 2 * n + 2 + len(_DIST_BUCKETS) + _bucket(between, _BETWEEN_BUCKETS)] = 1.0
    return feats


# --------------------------------------------------------------------------
# Relations: model architecture
# --------------------------------------------------------------------------
RelInput = Tuple[List[Doc], List[List[Candidate]]]
_N_POOLS = 7  # head, child, head first token, child first token, between, left, right


def _ranges(cands: Sequence[Candidate], n_tokens: int, window: int) -> numpy.ndarray:
    """Token ranges pooled for each candidate, shape (n_cands, _N_POOLS, 2)."""
    out = numpy.zeros((len(cands), _N_POOLS, 2), dtype="int64")
    for i, (hs, he, _, cs, ce, _) in enumerate(cands):
        first, last = min(hs, cs), max(he, ce)
        lo, hi = min(he, ce), max(hs, cs)
        out[i] = [
            (hs, he), (cs, ce), (hs, hs + 1), (cs, cs + 1),
            (lo, hi) if hi > lo else (0, 0),
            (max(0, first - window), first),
            (last, min(n_tokens, last + window)),
        ]
    return out


def _scatter_add(xp, target, index, values) -> None:
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:  # pragma: no cover - GPU only
        import cupyx

        cupyx.scatter_add(target, index, values)


def _pair_forward(model: Model, inputs: RelInput, is_train: bool):
    docs, cands = inputs
    tok2vec = model.get_ref("tok2vec")
    tokvecs, bp_tokvecs = tok2vec(docs, is_train)
    ops, xp = model.ops, model.ops.xp
    window = model.attrs["context_window"]
    outputs, saved = [], []
    for doc, doc_cands, vecs in zip(docs, cands, tokvecs):
        if not doc_cands:
            saved.append(None)
            continue
        width = vecs.shape[1]
        ranges = xp.asarray(_ranges(doc_cands, len(doc), window))
        lengths = (ranges[:, :, 1] - ranges[:, :, 0]).astype("float32")
        scale = xp.where(lengths > 0, 1.0 / xp.maximum(lengths, 1.0), 0.0).astype("float32")
        csum = xp.zeros((vecs.shape[0] + 1, width), dtype="float64")
        csum[1:] = xp.cumsum(vecs.astype("float64"), axis=0)
        pooled = xp.empty((len(doc_cands), _N_POOLS, width), dtype="float32")
        for lo in range(0, len(doc_cands), 2048):  # bounded float64 temporaries
            r = ranges[lo:lo + 2048]
            pooled[lo:lo + 2048] = csum[r[:, :, 1]] - csum[r[:, :, 0]]
        pooled *= scale[:, :, None]
        starts = {c[0] for c in doc_cands} | {c[3] for c in doc_cands}
        feats = xp.asarray(pair_features(doc, doc_cands, starts))
        outputs.append(xp.hstack([pooled.reshape((len(doc_cands), -1)), feats]))
        saved.append((ranges, scale, vecs.shape))
    n_out = model.get_dim("nO")
    output = xp.vstack(outputs) if outputs else ops.alloc2f(0, n_out)

    def backprop(d_output: Floats2d) -> List[Doc]:
        d_vecs = []
        row = 0
        for info in saved:
            if info is None:
                d_vecs.append(None)
                continue
            ranges, scale, shape = info
            n = ranges.shape[0]
            width = shape[1]
            grads = d_output[row:row + n, : _N_POOLS * width].reshape((n, _N_POOLS, width))
            row += n
            grads = grads * scale[:, :, None]
            diff = xp.zeros((shape[0] + 1, width), dtype="float32")
            _scatter_add(xp, diff, ranges[:, :, 0].ravel(), grads.reshape((-1, width)))
            _scatter_add(xp, diff, ranges[:, :, 1].ravel(), -grads.reshape((-1, width)))
            d_vecs.append(xp.cumsum(diff[:-1], axis=0))
        d_vecs = [
            d if d is not None else ops.alloc2f(*vecs.shape) for d, vecs in zip(d_vecs, tokvecs)
        ]
        return bp_tokvecs(d_vecs)

    return output, backprop


def _pair_init(model: Model, X: Optional[RelInput] = None, Y=None) -> None:
    tok2vec = model.get_ref("tok2vec")
    if X is not None:
        tok2vec.initialize(X=X[0])
    model.set_dim("nO", _N_POOLS * tok2vec.get_dim("nO") + N_PAIR_FEATURES)


@registry.layers("vi_decision_ie.PairFeatures.v1")
def build_pair_features(tok2vec: Model[List[Doc], List[Floats2d]], context_window: int = 3) -> Model[RelInput, Floats2d]:
    """Represent each candidate pair by mean-pooled token vectors of the head,
    the child, their first tokens, the words between them and a window
    around them, plus argument types, order, nesting and distance."""
    return Model(
        "rel_pair_features", _pair_forward, init=_pair_init, layers=[tok2vec],
        refs={"tok2vec": tok2vec}, attrs={"context_window": context_window}, dims={"nO": None},
    )


@registry.architectures("vi_decision_ie.RelationClassifier.v1")
def build_relation_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]],
    hidden_width: int = 128,
    context_window: int = 3,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[RelInput, Floats2d]:
    """Pair features -> ReLU hidden layer -> one logit per relation label."""
    pair = build_pair_features(tok2vec, context_window=context_window)
    model = chain(pair, Relu(nO=hidden_width, dropout=dropout), Linear(nO=nO))
    model.set_ref("tok2vec", tok2vec)
    return model


# --------------------------------------------------------------------------
# Relations: the component
# --------------------------------------------------------------------------
DEFAULT_REL_MODEL = """
[model]
@architectures = "vi_decision_ie.RelationClassifier.v1"
hidden_width = 128
context_window = 3
dropout = 0.1

[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 2
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true
"""


def _sigmoid(xp, x):
    return 1.0 / (1.0 + xp.exp(-xp.clip(x, -30, 30)))


def focal_loss_grad(xp, logits, targets, mask, gamma: float, positive_weight: float):
    """Loss and gradient of a focal binary cross-entropy over the allowed
    labels: easy negatives (most candidate pairs) weigh little, rare
    positives weigh ``positive_weight`` times more."""
    p = _sigmoid(xp, logits)
    eps = 1e-7
    pos = targets * positive_weight * (1 - p) ** gamma
    neg = (1 - targets) * p ** gamma
    loss = -(pos * xp.log(p + eps) + neg * xp.log(1 - p + eps)) * mask
    d_pos = targets * positive_weight * (1 - p) ** gamma * (gamma * p * xp.log(p + eps) - (1 - p))
    d_neg = (1 - targets) * p ** gamma * (p - gamma * (1 - p) * xp.log(1 - p + eps))
    grad = (d_pos + d_neg) * mask
    n = max(1.0, float(mask.sum()) / max(1, mask.shape[1]))
    return float(loss.sum()) / n, (grad / n).astype("float32")


def _char_key(doc: Doc, start: int, end: int, label: str) -> Tuple[int, int, str]:
    return (doc[start].idx, doc[end - 1].idx + len(doc[end - 1]), label)


def relation_key(relation: Relation) -> Tuple:
    """Strict identity of a relation: label and both arguments' offsets and labels."""
    return relation.as_tuple()


class RelationExtractor(TrainablePipe):
    """Scores every allowed pair of entities/mandates in a sentence for each
    relation label and keeps those at or above the label's threshold in
    ``doc._.relations``."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "relation_extractor",
        *,
        threshold: float = 0.5,
        max_distance: int = 100,
        focal_gamma: float = 2.0,
        positive_weight: float = 2.0,
        scorer: Optional[Callable] = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg = {
            "labels": [],
            "threshold": threshold,
            "thresholds": {},
            "max_distance": max_distance,
            "focal_gamma": focal_gamma,
            "positive_weight": positive_weight,
        }

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    def add_label(self, label: str) -> int:
        if label not in REL_LABELS:
            raise ValueError(f"Relation label {label!r} is not in the schema {REL_LABELS}")
        if label in self.cfg["labels"]:
            return 0
        self._allow_resize_output()
        self.cfg["labels"].append(label)
        return 1

    def _allow_resize_output(self) -> None:
        if self.model.has_dim("nO") and self.model.get_dim("nO"):
            raise ValueError("Cannot add relation labels to an initialised relation_extractor")

    def threshold_for(self, label: str) -> float:
        return float(self.cfg["thresholds"].get(label, self.cfg["threshold"]))

    def set_thresholds(self, thresholds: Dict[str, float]) -> None:
        """Per-label decision thresholds (tuned on dev)."""
        self.cfg["thresholds"] = {k: float(v) for k, v in thresholds.items() if k in self.labels}

    def _mask(self, cands: Sequence[Candidate]) -> numpy.ndarray:
        mask = numpy.zeros((len(cands), len(self.labels)), dtype="float32")
        for i, cand in enumerate(cands):
            for label in allowed_labels(cand[2], cand[5]):
                if label in self.labels:
                    mask[i, self.labels.index(label)] = 1.0
        return mask

    def candidates(self, doc: Doc, spans: Optional[Sequence[Span]] = None) -> List[Candidate]:
        """Candidate pairs among ``spans`` (default: the doc's entities and mandates)."""
        spans = argument_spans(doc) if spans is None else spans
        return make_candidates(doc, spans, int(self.cfg["max_distance"]))

    def predict(self, docs: Iterable[Doc]):
        docs = list(docs)
        cands = [self.candidates(doc) for doc in docs]
        if not sum(len(c) for c in cands):
            return cands, numpy.zeros((0, len(self.labels)), dtype="float32")
        logits = self.model.predict((docs, cands))
        scores = self.model.ops.to_numpy(_sigmoid(self.model.ops.xp, logits))
        mask = numpy.vstack([self._mask(c) for c in cands if c])
        return cands, scores * mask

    def set_annotations(self, docs: Iterable[Doc], predictions) -> None:
        cands, scores = predictions
        row = 0
        thresholds = numpy.asarray([self.threshold_for(label) for label in self.labels], dtype="float32")
        for doc, doc_cands in zip(docs, cands):
            found = []
            for cand in doc_cands:
                hs, he, hl, cs, ce, cl = cand
                for j in numpy.nonzero(scores[row] >= thresholds)[0]:
                    if scores[row, j] > 0:
                        found.append((Span(doc, hs, he, label=hl), Span(doc, cs, ce, label=cl), self.labels[j], float(scores[row, j])))
                row += 1
            set_relations(doc, found)

    def _training_spans(self, eg: Example) -> List[Span]:
        """Arguments to train on: the gold ones (placed on the predicted doc's
        tokens) plus the ones the pipeline predicted, so that the component
        learns to reject pairs with wrong arguments. Early in training the
        span models propose many mandates; at most ``2 * gold + 10`` of the
        predicted ones are kept so the candidate set stays bounded."""
        gold = []
        for span in argument_spans(eg.reference):
            aligned = align_char_span(eg.predicted, span.start_char, span.end_char, label=span.label_)
            if aligned is not None:
                gold.append(aligned)
        predicted = argument_spans(eg.predicted)
        limit = 2 * len(gold) + 10
        if len(predicted) > limit:
            predicted = list(eg.predicted.ents) + list(eg.predicted.spans.get(MANDATES_KEY, []))[: max(0, limit - len(eg.predicted.ents))]
        seen = {(s.start, s.end, s.label_) for s in gold}
        return gold + [s for s in predicted if (s.start, s.end, s.label_) not in seen and s.label_ in SPAN_LABELS]

    def _targets(self, eg: Example, cands: Sequence[Candidate]) -> numpy.ndarray:
        gold = {relation_key(r) for r in eg.reference._.relations}
        doc = eg.predicted
        out = numpy.zeros((len(cands), len(self.labels)), dtype="float32")
        for i, (hs, he, hl, cs, ce, cl) in enumerate(cands):
            head, child = _char_key(doc, hs, he, hl), _char_key(doc, cs, ce, cl)
            for j, label in enumerate(self.labels):
                if head + child + (label,) in gold:
                    out[i, j] = 1.0
        return out

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd: Optional[Optimizer] = None, losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        """Learn from gold arguments and from the arguments the pipeline
        predicts (with annotating components), so it works on predicted spans."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "RelationExtractor.update")
        docs = [eg.predicted for eg in examples]
        cands = [self.candidates(eg.predicted, self._training_spans(eg)) for eg in examples]
        if not sum(len(c) for c in cands):
            return losses
        logits, backprop = self.model.begin_update((docs, cands))
        targets = numpy.vstack([self._targets(eg, c) for eg, c in zip(examples, cands) if c])
        mask = numpy.vstack([self._mask(c) for c in cands if c])
        loss, grad = self.get_loss(examples, (logits, targets, mask))
        backprop(grad)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores) -> Tuple[float, Floats2d]:
        logits, targets, mask = scores
        xp = self.model.ops.xp
        return focal_loss_grad(
            xp, logits, xp.asarray(targets), xp.asarray(mask),
            float(self.cfg["focal_gamma"]), float(self.cfg["positive_weight"]),
        )

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None, labels: Optional[List[str]] = None) -> None:
        if labels is None:
            labels = sorted({r.label for eg in get_examples() for r in eg.reference._.relations})
        for label in labels:
            self.add_label(label)
        if not self.labels:
            raise ValueError(Errors.E143.format(name=self.name))
        docs, cands = [], []
        for eg in list(get_examples())[:10]:
            doc_cands = self.candidates(eg.reference)
            if doc_cands:
                docs.append(eg.reference)
                cands.append(doc_cands)
        sample_y = numpy.zeros((sum(len(c) for c in cands), len(self.labels)), dtype="float32")
        self.model.initialize(X=(docs, cands) if docs else None, Y=sample_y if docs else None)
        if not docs:
            self.model.layers[-1].set_dim("nO", len(self.labels))

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, object]:
        return score_relations(examples)


def score_relations(examples: Iterable[Example], **kwargs) -> Dict[str, object]:
    """Strict end-to-end relation scores: a predicted relation counts only if
    its label and both arguments' offsets and labels match a gold one; a gold
    relation the candidates never produced counts as a miss."""
    micro = PRFScore()
    per_label: Dict[str, PRFScore] = {}
    for eg in examples:
        gold = {relation_key(r) for r in eg.reference._.relations}
        pred = {relation_key(r) for r in eg.predicted._.relations}
        for label in {k[-1] for k in gold | pred}:
            g = {k for k in gold if k[-1] == label}
            p = {k for k in pred if k[-1] == label}
            score = PRFScore(tp=len(g & p), fp=len(p - g), fn=len(g - p))
            per_label.setdefault(label, PRFScore()).__iadd__(score)
            micro += score
    return {
        "rel_micro_p": micro.precision,
        "rel_micro_r": micro.recall,
        "rel_micro_f": micro.fscore,
        "rel_per_type": {label: s.to_dict() for label, s in sorted(per_label.items())},
    }


@registry.scorers("vi_decision_ie.relation_scorer.v1")
def make_relation_scorer() -> Callable:
    return score_relations


@Language.factory(
    "relation_extractor",
    assigns=["doc._.relations"],
    requires=["doc.ents", "doc.spans"],
    default_config={
        "model": spacy.util.Config().from_str(DEFAULT_REL_MODEL)["model"],
        "threshold": 0.5,
        "max_distance": 100,
        "focal_gamma": 2.0,
        "positive_weight": 2.0,
        "scorer": {"@scorers": "vi_decision_ie.relation_scorer.v1"},
    },
    default_score_weights={"rel_micro_f": 1.0, "rel_micro_p": 0.0, "rel_micro_r": 0.0},
)
def make_relation_extractor(
    nlp: Language, name: str, model: Model, threshold: float, max_distance: int,
    focal_gamma: float, positive_weight: float, scorer: Optional[Callable],
) -> RelationExtractor:
    """Factory of the trainable relation extractor."""
    return RelationExtractor(
        nlp.vocab, model, name, threshold=threshold, max_distance=max_distance,
        focal_gamma=focal_gamma, positive_weight=positive_weight, scorer=scorer,
    )


# --------------------------------------------------------------------------
# Mandates: BIO tags <-> spans
# --------------------------------------------------------------------------
MANDATE_BEGIN, MANDATE_INSIDE, OUTSIDE = "B-MANDATE", "I-MANDATE", "O"


def mandate_tags(doc: Doc, spans: Iterable[Span]) -> List[str]:
    """BIO tags of ``doc``'s tokens for non-overlapping mandate ``spans``
    (training targets of the ``mandate_tagger``)."""
    tags = [OUTSIDE] * len(doc)
    for span in spans:
        tags[span.start] = MANDATE_BEGIN
        for i in range(span.start + 1, span.end):
            tags[i] = MANDATE_INSIDE
    return tags


_CLAUSE_BREAKS = frozenset({";", ".", "!", "?", ":", "…", "\n"})
_EDGE_PUNCT = frozenset(",;:.-–—•|/\"“”'()[]")


def _is_clause_break(form: str) -> bool:
    return form.strip() in _CLAUSE_BREAKS or "\n" in form


def spans_from_tags(
    tags: Sequence[str],
    forms: Optional[Sequence[str]] = None,
    min_length: int = 4,
    split_on_begin: bool = True,
    min_tagged: int = 3,
) -> List[Tuple[int, int]]:
    """Token ranges of the mandates in a BIO sequence.

    Without ``forms`` this is plain BIO decoding (an "I" without a "B"
    before it opens a span). With ``forms`` (canonical token texts) the
    guideline's structure is used: duties are separated by ";", sentence
    and list-item boundaries, so a duty starts at the first tagged token of
    a clause and runs to the clause's end (";", ".", "!", "?", ":", a line
    break); with ``split_on_begin`` a "B" after an untagged token starts a
    new duty in the same clause. A candidate needs ``min_tagged`` tagged
    tokens (a stray tag does not make a duty), punctuation at the edges is
    trimmed, and spans shorter than ``min_length`` tokens are dropped."""
    if forms is None:
        raw: List[Tuple[int, int]] = []
        start = None
        for i, tag in enumerate(tags):
            if tag == MANDATE_BEGIN or (tag == MANDATE_INSIDE and start is None):
                if start is not None:
                    raw.append((start, i))
                start = i
            elif tag != MANDATE_INSIDE and start is not None:
                raw.append((start, i))
                start = None
        if start is not None:
            raw.append((start, len(tags)))
        return raw
    spans: List[Tuple[int, int]] = []
    start = None
    for i, (tag, form) in enumerate(zip(tags, forms)):
        if _is_clause_break(form):
            if start is not None:
                spans.append((start, i))
                start = None
            continue
        if tag == MANDATE_BEGIN and start is not None and split_on_begin and tags[i - 1] == OUTSIDE:
            spans.append((start, i))
            start = i
        elif tag in (MANDATE_BEGIN, MANDATE_INSIDE) and start is None:
            start = i
    if start is not None:
        spans.append((start, len(tags)))
    out = []
    for start, end in spans:
        tagged = sum(1 for tag in tags[start:end] if tag != OUTSIDE)
        if tagged < min_tagged:
            continue
        while start < end and (forms[start].strip() in _EDGE_PUNCT or not forms[start].strip()):
            start += 1
        while end > start and (forms[end - 1].strip() in _EDGE_PUNCT or not forms[end - 1].strip()):
            end -= 1
        if end - start >= min_length:
            out.append((start, end))
    return out


def score_mandates(examples: Iterable[Example], **kwargs) -> Dict[str, object]:
    """Exact-span P/R/F of ``doc.spans["mandates"]`` (spans_mandates_p/r/f)."""
    from spacy.scorer import Scorer

    return Scorer.score_spans(
        examples, f"spans_{MANDATES_KEY}",
        getter=lambda doc, attr: doc.spans.get(MANDATES_KEY, []),
        has_annotation=lambda doc: MANDATES_KEY in doc.spans,
        allow_overlap=True,
    )


@registry.scorers("vi_decision_ie.mandate_scorer.v1")
def make_mandate_scorer() -> Callable:
    return score_mandates


class MandateSpans:
    """Turns the ``mandate_tagger``'s BIO tags (``token.tag_``) into spans
    labelled MANDATE in ``doc.spans["mandates"]`` with ``spans_from_tags``
    (clause-based decoding). Mandates never overlap (guideline: separate
    duties are separate spans), so BIO tags are enough."""

    def __init__(self, name: str, spans_key: str, label: str, min_length: int, split_on_begin: bool,
                 min_tagged: int, scorer: Optional[Callable]):
        self.name = name
        self.min_tagged = min_tagged
        self.spans_key = spans_key
        self.label = label
        self.min_length = min_length
        self.split_on_begin = split_on_begin
        self.scorer = scorer

    def __call__(self, doc: Doc) -> Doc:
        tags = [token.tag_ or OUTSIDE for token in doc]
        forms = [canonical_token(token.text) for token in doc]
        doc.spans[self.spans_key] = [
            Span(doc, start, end, label=self.label)
            for start, end in spans_from_tags(tags, forms, self.min_length, self.split_on_begin, self.min_tagged)
        ]
        return doc

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, object]:
        return self.scorer(examples, **kwargs) if self.scorer else {}

    # The decoding settings are saved with the pipeline (the tune step sets
    # min_tagged after training), like the patterns of spaCy's rule components.
    _SETTINGS = ("min_length", "split_on_begin", "min_tagged")

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.json_dumps({k: getattr(self, k) for k in self._SETTINGS}).encode("utf8")

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = tuple()) -> "MandateSpans":
        for key, value in srsly.json_loads(data).items():
            if key in self._SETTINGS:
                setattr(self, key, value)
        return self

    def to_disk(self, path, *, exclude: Iterable[str] = tuple()) -> None:
        path = spacy.util.ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "settings.json", {k: getattr(self, k) for k in self._SETTINGS})

    def from_disk(self, path, *, exclude: Iterable[str] = tuple()) -> "MandateSpans":
        settings = spacy.util.ensure_path(path) / "settings.json"
        if settings.exists():
            self.from_bytes(settings.read_bytes())
        return self


@Language.factory(
    "mandate_spans",
    assigns=["doc.spans"],
    requires=["token.tag"],
    default_config={
        "spans_key": MANDATES_KEY,
        "label": MANDATE,
        "min_length": 5,
        "split_on_begin": True,
        "min_tagged": 3,
        "scorer": {"@scorers": "vi_decision_ie.mandate_scorer.v1"},
    },
    default_score_weights={"spans_mandates_f": 1.0, "spans_mandates_p": 0.0, "spans_mandates_r": 0.0},
)
def make_mandate_spans(
    nlp: Language, name: str, spans_key: str, label: str, min_length: int,
    split_on_begin: bool, min_tagged: int, scorer: Optional[Callable],
) -> MandateSpans:
    """Factory of the (non-trainable) tags-to-spans decoder for mandates."""
    return MandateSpans(name, spans_key, label, min_length, split_on_begin, min_tagged, scorer)


# --------------------------------------------------------------------------
# Bounded memory on long documents
# --------------------------------------------------------------------------
from spacy.pipeline.tok2vec import Tok2Vec  # noqa: E402


class ChunkedTok2Vec(Tok2Vec):
    """spaCy's ``tok2vec`` whose prediction runs a long doc in windows of
    ``max_tokens`` tokens that overlap by ``overlap`` tokens on each side.

    The CNN sees ``depth * window_size`` tokens to each side, so with an
    overlap at least that wide the vectors are the same as for the whole
    doc, while memory stays bounded by the window instead of growing with
    the document (a 1 MB notice needs GBs in one piece). Training is
    unchanged."""

    def __init__(self, vocab: Vocab, model: Model, name: str = "tok2vec", *, max_tokens: int = 4000, overlap: int = 32):
        super().__init__(vocab, model, name)
        self.max_tokens = max_tokens
        self.overlap = overlap

    def predict(self, docs: Iterable[Doc]):
        docs = list(docs)
        short = [i for i, doc in enumerate(docs) if len(doc) <= self.max_tokens]
        outputs: List[Optional[Floats2d]] = [None] * len(docs)
        if short:
            for i, vecs in zip(short, self.model.predict([docs[i] for i in short])):
                outputs[i] = vecs
        for i, doc in enumerate(docs):
            if outputs[i] is None:
                outputs[i] = self._predict_long(doc)
        return outputs

    def _predict_long(self, doc: Doc) -> Floats2d:
        step = self.max_tokens - 2 * self.overlap
        parts = []
        for start in range(0, len(doc), step):
            lo = max(0, start - self.overlap)
            hi = min(len(doc), start + step + self.overlap)
            vecs = self.model.predict([doc[lo:hi].as_doc()])[0]
            keep_end = min(start + step, len(doc))
            parts.append(vecs[start - lo: keep_end - lo])
        return self.model.ops.xp.vstack(parts)


@Language.factory(
    "chunked_tok2vec",
    assigns=["doc.tensor"],
    default_config={
        "model": {"@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 96, "depth": 4,
                  "embed_size": 2000, "window_size": 1, "maxout_pieces": 3, "subword_features": True},
        "max_tokens": 4000,
        "overlap": 32,
    },
)
def make_chunked_tok2vec(nlp: Language, name: str, model: Model, max_tokens: int, overlap: int) -> ChunkedTok2Vec:
    """Factory of the memory-bounded tok2vec (see ChunkedTok2Vec)."""
    if overlap < 0 or max_tokens <= 2 * overlap:
        raise ValueError(f"chunked_tok2vec needs max_tokens > 2 * overlap, got {max_tokens} and {overlap}")
    return ChunkedTok2Vec(nlp.vocab, model, name, max_tokens=max_tokens, overlap=overlap)
