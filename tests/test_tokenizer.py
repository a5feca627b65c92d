"""The project's syllable tokenizer (code/vi_ie.py, via scripts/corpus.blank_nlp):
annotated spans align with its tokens, it never changes the text, it marks
sentence starts by the guideline rule, and spelling variants get the same
token norms. Also documents why spaCy's pyvi tokenizer is not used."""
from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import pytest
import spacy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from corpus import blank_nlp, read_records  # noqa: E402
import vi_ie  # noqa: E402

DEV = ROOT / "corpus" / "dev.jsonl"


@pytest.fixture(scope="module")
def nlp():
    return blank_nlp()


@pytest.fixture(scope="module")
def dev_records():
    return list(read_records(DEV))


def norms(nlp, text):
    return [t.norm_ for t in nlp.make_doc(text) if not t.is_space]


def sentence_first_words(nlp, text):
    return [sent[0].text.strip() for sent in nlp.make_doc(text).sents]


def test_every_dev_span_aligns(nlp, dev_records):
    assert dev_records and any(rec.data["spans"] for rec in dev_records)
    for rec in dev_records:
        doc = nlp.make_doc(rec.data["text"])
        for span in rec.data["spans"]:
            aligned = vi_ie.align_char_span(doc, span["start"], span["end"], span["label"])
            assert aligned is not None, (rec.id, span["id"], rec.data["text"][span["start"]:span["end"]])
            assert aligned.label_ == span["label"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "   \t ",
        "\n",
        "\r\n",
        "Sở\r\nNội vụ\r\n",
        "Ủy\u00a0ban nhân dân",
        "\u00a0Sở Tài chính\u00a0",
        "Ban\u200b Chỉ đạo\u200b",
        "\u200b",
        "\ufeffQuyết định",
        unicodedata.normalize("NFD", "Uỷ ban nhân dân tỉnh Khánh Hoà"),
        "a\u0301\u0323 ̀x",  # stray combining marks
        "<p>Sở Nội vụ</p>\n<br/>Trưởng&nbsp;ban &amp; Phó ban &#8211; Tổ&#x20;giúp việc",
        "Sở TT&TT; TP. Kon Tum... Xong!  ",
        "Điều 1.\n\n\n  a) Thành lập",
    ],
)
def test_doc_text_is_input(nlp, text):
    doc = nlp.make_doc(text)
    assert doc.text == text
    assert "".join(t.text_with_ws for t in doc) == text


def test_one_token_per_syllable_and_punctuation(nlp):
    doc = nlp.make_doc("Sở TT&TT, UBND tỉnh.")
    assert [t.text for t in doc] == ["Sở", "TT", "&", "TT", ",", "UBND", "tỉnh", "."]


def test_full_stop_then_space_ends_sentence(nlp):
    assert sentence_first_words(nlp, "Sở Nội vụ chủ trì. Sở Tài chính phối hợp.") == ["Sở", "Sở"]


def test_full_stop_after_tp_does_not_end_sentence(nlp):
    assert sentence_first_words(nlp, "UBND TP. Kon Tum thành lập Ban Chỉ đạo.") == ["UBND"]


def test_full_stop_without_space_does_not_end_sentence(nlp):
    assert sentence_first_words(nlp, "Số 1.2 và tổ 3.") == ["Số"]


def test_line_break_ends_sentence(nlp):
    assert sentence_first_words(nlp, "Thành lập Ban Chỉ đạo\nTrưởng ban: Chủ tịch UBND tỉnh") == ["Thành", "Trưởng"]


def test_ellipsis_then_space_ends_sentence(nlp):
    firsts = sentence_first_words(nlp, "Các nhiệm vụ khác... Ban Chỉ đạo tự giải thể.")
    assert firsts == ["Các", "Ban"]


def test_ellipsis_without_space_does_not_end_sentence(nlp):
    assert sentence_first_words(nlp, "Tham mưu...v.v cho UBND tỉnh.") == ["Tham"]


def test_nfd_gives_same_norms_as_nfc(nlp, dev_records):
    text = dev_records[0].data["text"][:2000]
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    assert norms(nlp, nfd) == norms(nlp, text)


@pytest.mark.parametrize("a,b", [("Ủy", "Uỷ"), ("Hòa", "Hoà"), ("Khánh Hòa", "Khánh Hoà"), ("thủy lợi", "thuỷ lợi")])
def test_tone_conventions_give_same_norm(nlp, a, b):
    assert a != b
    assert norms(nlp, a) == norms(nlp, b)


def test_eth_lookalike_gives_same_norm(nlp):
    assert "\u00d0" != "\u0110"
    assert norms(nlp, "\u00d0ồng Nai") == norms(nlp, "\u0110ồng Nai")
    assert norms(nlp, "Ban Chỉ \u00f0ạo") == norms(nlp, "Ban Chỉ \u0111ạo")


def test_different_words_keep_different_norms(nlp):
    # the canonical form must not merge real distinctions
    assert norms(nlp, "Hòa") != norms(nlp, "Hóa")
    assert norms(nlp, "Đồng") != norms(nlp, "Dồng")


def test_pyvi_tokenizer_misaligns_some_dev_span(dev_records):
    """spaCy's "vi" tokenizer joins syllables into words with pyvi; its word
    boundaries cut through annotated spans (e.g. "UBND tỉnh" -> "UBND",
    "tỉnh thành lập"), which the syllable tokenizer never does."""
    pyvi = spacy.blank("vi")
    assert pyvi.tokenizer.use_pyvi

    def misaligned(rec):
        doc = pyvi.make_doc(rec.data["text"])
        return any(doc.char_span(s["start"], s["end"]) is None for s in rec.data["spans"])

    assert any(misaligned(rec) for rec in dev_records)
