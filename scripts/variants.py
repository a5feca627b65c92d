"""Spelling variants of a text, as real notices arrive: decomposed Unicode,
the other tone-mark convention, no-break and zero-width spaces, CRLF line
ends, "Ð" (U+00D0) for "Đ", HTML remnants.

Every variant keeps the token sequence of the project's tokenizer, so a
prediction on the variant can be compared token by token with one on the
clean text. Used by the robustness tests and the variant evaluation.
"""
from __future__ import annotations

import random
import re
import unicodedata
from typing import Callable, Dict

_TONES = "\u0300\u0301\u0303\u0309\u0323"
# An open syllable ending in oa/oe/uy (not "qu" + vowel): the two
# conventions put the tone on the first ("hòa", "thủy") or second ("hoà", "thuỷ") vowel.
_PAIR = re.compile(
    rf"(?<![qQ\w\u0300-\u036f])([^\W\d_]*?)(?<![qQ])([oOuU])([{_TONES}]?)([aAeEyY])([{_TONES}]?)(?![\w\u0300-\u036f])"
)


def to_nfd(text: str) -> str:
    """Decomposed Unicode: combining marks as separate code points."""
    return unicodedata.normalize("NFD", text)


def swap_tone_convention(text: str) -> str:
    """Move the tone mark of "oa", "oe", "uy" syllables to the other vowel:
    "hòa" <-> "hoà", "thủy" <-> "thuỷ", "Ủy" <-> "Uỷ". Returns NFC text."""

    def swap(match: re.Match) -> str:
        onset, first, tone1, second, tone2 = match.groups()
        if tone1 and not tone2:
            return onset + first + second + tone1
        if tone2 and not tone1:
            return onset + first + tone2 + second
        return match.group(0)

    return unicodedata.normalize("NFC", _PAIR.sub(swap, unicodedata.normalize("NFD", text)))


def with_nbsp(text: str, rng: random.Random, rate: float = 0.3) -> str:
    """Replace some single spaces between words by no-break spaces."""
    return re.sub(r"(?<=\S) (?=\S)", lambda m: "\u00a0" if rng.random() < rate else " ", text)


def with_zero_width(text: str, rng: random.Random, rate: float = 0.2) -> str:
    """Put zero-width spaces after some words (before their space)."""
    return re.sub(r"(?<=\w)(?= )", lambda m: "\u200b" if rng.random() < rate else "", text)


def with_crlf(text: str) -> str:
    """Windows line ends."""
    return text.replace("\n", "\r\n")


def with_eth(text: str) -> str:
    """Icelandic "Ð" (U+00D0) typed for Vietnamese "Đ" (U+0110)."""
    return text.replace("\u0110", "\u00d0")


def with_html(text: str) -> str:
    """Paragraph tags around lines and "&nbsp;" for some spaces, as left by a
    careless copy from a web page."""
    lines = text.split("\n")
    return "\n".join(f"<p>{line}</p>" if line.strip() else line for line in lines).replace(", ", ",&nbsp;")


def variant_functions(seed: int = 0) -> Dict[str, Callable[[str], str]]:
    """Named variant functions (deterministic for a seed)."""
    return {
        "nfd": to_nfd,
        "tone": swap_tone_convention,
        "nbsp": lambda t: with_nbsp(t, random.Random(seed)),
        "zwsp": lambda t: with_zero_width(t, random.Random(seed)),
        "crlf": with_crlf,
        "eth": with_eth,
        "html": with_html,
    }
