"""The reader emulator's answer rule: pure functions over OCR results (no engine, no HTTP).

An OCR result for one image is a list of `Line`s: the text of one detected line and its
axis-aligned box in the pixels of the (downscaled) image that was read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

# Codes: 5-6 characters from an alphabet without look-alikes (no O/0, I/1/L, S/5, B/8, Z/2).
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_RE = re.compile(r"[ACDEFGHJKMNPQRTUVWXY34679]{5,6}")
NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")

# A quoted key: straight double quotes, or curly “…” (also „…“ and «…»).
_QUOTE_RES = [
    re.compile(r'"([^"\n]{1,100})"'),
    re.compile(r"\u201c([^\u201c\u201d\n]{1,100})\u201d"),
    re.compile(r"\u201e([^\u201c\u201d\u201e\n]{1,100})[\u201c\u201d]"),
    re.compile(r"\u00ab\s?([^\u00ab\u00bb\n]{1,100}?)\s?\u00bb"),
]
_FORMAT_RE = re.compile(r"\b(codes?|numbers?|values?)\b", re.IGNORECASE)
_BOXED01_RE = (re.compile(r"\\boxed\{\s*0\s*\}"), re.compile(r"\\boxed\{\s*1\s*\}"))

# Separators between a key and its value, and punctuation stripped around a token.
_LEAD_SEP = " \t:;=,|>\u2192\u00b7\u2014\u2013#"
_TOKEN_STRIP = " \t.,:;!?\"'`()[]{}<>|/\\*#=\u2018\u2019\u201c\u201d\u00ab\u00bb"
_SPLIT_RE = re.compile(r"[\s:;,=|()\[\]{}<>\"'`\u2018\u2019\u201c\u201d/\\]+")


@dataclass(frozen=True)
class Line:
    text: str
    box: Tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float = 1.0

    @property
    def height(self) -> float:
        return max(1.0, self.box[3] - self.box[1])

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2.0


@dataclass(frozen=True)
class Question:
    key: Optional[str]
    fmt: str  # "code" | "number"


def _norm_text(s: str) -> str:
    return s.replace("\u2212", "-").replace("\u00a0", " ")


def find_key(text: str) -> Optional[str]:
    """The first substring of `text` in double quotes (straight or curly), stripped."""
    best = None
    for rx in _QUOTE_RES:
        for m in rx.finditer(text):
            k = m.group(1).strip()
            if not k:
                continue
            if best is None or m.start() < best[0]:
                best = (m.start(), k)
            break
    return best[1] if best else None


def find_format(text: str) -> str:
    """"code" or "number": the first of the words code / number / value in `text`; code by default."""
    m = _FORMAT_RE.search(text)
    if not m:
        return "code"
    return "code" if m.group(1).lower().startswith("code") else "number"


def parse_question(text: str) -> Question:
    return Question(key=find_key(text), fmt=find_format(text))


def is_verification(text: str) -> bool:
    return bool(_BOXED01_RE[0].search(text) and _BOXED01_RE[1].search(text))


def clean_token(tok: str) -> str:
    tok = _norm_text(tok).strip(_TOKEN_STRIP)
    # a trailing '-' is punctuation; a leading one may be a sign
    tok = tok.rstrip("-\u2014\u2013")
    return tok


def as_code(tok: str) -> Optional[str]:
    """The token as a code, or None. Light normalisation only: strip punctuation, uppercase.

    A token that OCR returned wholly in lower/mixed case without any digit (an ordinary word such
    as "Meter") is not taken for a code; misread characters are never "fixed".
    """
    t = clean_token(tok)
    u = t.upper()
    if not CODE_RE.fullmatch(u):
        return None
    if t != u and not any(c.isdigit() for c in t):
        return None
    return u


def as_number(tok: str) -> Optional[str]:
    t = clean_token(tok)
    if NUMBER_RE.fullmatch(t):
        return t
    return None


def match_format(tok: str, fmt: str) -> Optional[str]:
    return as_code(tok) if fmt == "code" else as_number(tok)


def reading_order(lines: Sequence[Line]) -> List[Line]:
    """Top-to-bottom, left-to-right: lines whose vertical centres are within half a line height
    of a row's first line share that row and are ordered by x."""
    rest = sorted(lines, key=lambda l: (l.box[1], l.box[0]))
    rows: List[List[Line]] = []
    for ln in rest:
        for row in rows:
            ref = row[0]
            if abs(ln.cy - ref.cy) <= 0.5 * min(ln.height, ref.height):
                row.append(ln)
                break
        else:
            rows.append([ln])
    rows.sort(key=lambda r: min(l.box[1] for l in r))
    out: List[Line] = []
    for row in rows:
        out.extend(sorted(row, key=lambda l: l.box[0]))
    return out


def _despaced_with_map(s: str) -> Tuple[str, List[int]]:
    chars, idx = [], []
    for i, c in enumerate(s):
        if not c.isspace():
            chars.append(c.lower())
            idx.append(i)
    return "".join(chars), idx


def _key_end_positions(text: str, key: str) -> List[int]:
    """Indices in `text` just after each occurrence of `key` (case-insensitive, spaces ignored),
    where the occurrence is not glued to letters/digits on either side."""
    dk, _ = _despaced_with_map(_norm_text(key))
    dt, idx = _despaced_with_map(_norm_text(text))
    if not dk:
        return []
    out = []
    start = 0
    while True:
        p = dt.find(dk, start)
        if p < 0:
            break
        start = p + 1
        first, last = idx[p], idx[p + len(dk) - 1]
        if dk[0].isalnum() and first > 0 and text[first - 1].isalnum():
            continue
        if dk[-1].isalnum() and last + 1 < len(text) and text[last + 1].isalnum():
            continue
        out.append(last + 1)
    return out


def _first_token(s: str) -> Optional[str]:
    s = _norm_text(s)
    # strip separators; a '-' is a separator unless it starts a negative number
    while s:
        c = s[0]
        if c in _LEAD_SEP or (c in "-\u2014\u2013" and not (len(s) > 1 and s[1].isdigit())):
            s = s[1:]
        else:
            break
    for part in s.split():
        t = clean_token(part)
        if t:
            return t
    return None


def _line_right(lines: Sequence[Line], anchor: Line) -> Optional[Line]:
    """A detection that continues `anchor` on the same row (OCR sometimes splits one line in two):
    vertical centres within half a line height, starting right of it within two line heights."""
    h = anchor.height
    best = None
    for ln in lines:
        if ln is anchor or abs(ln.cy - anchor.cy) > 0.5 * min(h, ln.height):
            continue
        gap = ln.box[0] - anchor.box[2]
        if -0.5 * h <= gap <= 2.0 * h and (best is None or gap < best[0]):
            best = (gap, ln)
    return best[1] if best else None


def _line_below(lines: Sequence[Line], anchor: Line) -> Optional[Line]:
    """The nearest line under `anchor`: starting below its centre, within ~2.5 line heights,
    overlapping it horizontally (with a margin of one line height)."""
    h = anchor.height
    ax1, ax2 = anchor.box[0] - h, anchor.box[2] + h
    best = None
    for ln in lines:
        if ln is anchor or ln.box[1] < anchor.cy:
            continue
        gap = ln.box[1] - anchor.box[3]
        if gap > 2.5 * h:
            continue
        if min(ax2, ln.box[2]) - max(ax1, ln.box[0]) <= 0:
            continue
        d = (max(gap, 0.0), abs(ln.box[0] - anchor.box[0]))
        if best is None or d < best[0]:
            best = (d, ln)
    return best[1] if best else None


def key_token(lines: Sequence[Line], key: str) -> Optional[str]:
    """The token that follows `key` in one image's OCR lines (reading order), or None. When the key
    ends its line: the first token of a detection continuing that line to the right, else of the
    nearest line under it."""
    ordered = reading_order(lines)
    for ln in ordered:
        for end in _key_end_positions(ln.text, key):
            tok = _first_token(ln.text[end:])
            if tok:
                return tok
            right = _line_right(ordered, ln)
            if right is not None:
                tok = _first_token(right.text)
                if tok:
                    return tok
            below = _line_below(ordered, ln)
            if below is not None:
                tok = _first_token(below.text)
                if tok:
                    return tok
    return None


def format_token(lines: Sequence[Line], fmt: str) -> Optional[str]:
    """The first token in reading order that has the answer format, normalised, or None."""
    for ln in reading_order(lines):
        for part in _SPLIT_RE.split(_norm_text(ln.text)):
            if not part:
                continue
            got = match_format(part, fmt)
            if got:
                return got
    return None


def normalise_answer(tok: str, fmt: str) -> str:
    t = clean_token(tok)
    return t.upper() if fmt == "code" else t


@dataclass
class Decision:
    answer: Optional[str]  # None when nothing was read
    rule: str  # "key" | "format" | "none"
    image_index: Optional[int]


def answer(images: Sequence[Sequence[Line]], q: Question) -> Decision:
    """Rule 1 (a quoted key): the token after the key, last image first. Rule 2: the first token
    with the named format in the last image, in reading order."""
    if not images:
        return Decision(None, "none", None)
    if q.key:
        for i in range(len(images) - 1, -1, -1):
            tok = key_token(images[i], q.key)
            if tok:
                return Decision(normalise_answer(tok, q.fmt), "key", i)
        return Decision(None, "none", None)
    tok = format_token(images[-1], q.fmt)
    if tok:
        return Decision(tok, "format", len(images) - 1)
    return Decision(None, "none", None)


def verify(images: Sequence[Sequence[Line]], q: Question) -> bool:
    """True when the LAST image yields a token for the question: with a key, the token after the key
    must have the named format; without one, any token of that format."""
    if not images:
        return False
    last = images[-1]
    if q.key:
        tok = key_token(last, q.key)
        return bool(tok and match_format(tok, q.fmt))
    return format_token(last, q.fmt) is not None
