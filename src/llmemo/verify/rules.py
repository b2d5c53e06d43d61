"""The default hit verifier: offline rules for what embeddings blur.

Sentence embeddings place "Is ibuprofen safe with alcohol?" and "... unsafe ..." closer
together than most real paraphrases, so no distance threshold can tell them apart. This
verifier compares what decides an answer and lets everything else be paraphrased:

* **quantities** — numbers (digits or words), money with its currency, percentages,
  units (converted: "2 weeks" = "14 days", "2 kilo" = "2kg"), clock times ("7am" =
  "seven in the morning"), calendar words (weekdays, months, weekend, tomorrow, ...)
  must agree, each one matched on the other side;
* **polarity** — negation (not, n't, never, no, without, ...) and antonyms: prefixes
  (un-, in-/im-/il-/ir-, dis-, non-, de-, -less, -free) against the base word on the
  other side, and antonym *axes* from a hand-written lexicon (enable/disable, on/off,
  include/exclude, allow/ban, increase/decrease, under/over, before/after, best/worst,
  ...). One flip plus one negation cancel ("don't include" = "exclude");
* **entities and roles** — capitalised names, acronyms and codes must occur on both
  sides (acronyms also match their spelled-out form: "2FA" / "two-factor
  authentication"), and what follows from/to/into/than keeps its role: "from MySQL to
  Postgres" is not "from Postgres to MySQL";
* **details** — when two prompts share most of their content words (a *minimal
  contrast*), every remaining content word must find a counterpart (same stem, a typo
  of it, or a same-pole synonym from the lexicon): "rice"/"quinoa", "my password"/"my
  colleague's password" are different questions. Prompts that are reworded beyond what
  the rules can align are only accepted when the embedding is close
  (``reworded_max_distance``): the rules cannot vouch for what they cannot see.

Libraries. Stemming uses ``snowballstemmer`` (the Snowball project's Porter2 English
stemmer: pure Python, no dependencies, BSD; it runs the C ``PyStemmer`` automatically
when that is installed, with identical output). No well-kept library does the rest
offline within budget: dateparser (~8 ms per prompt) and quantulum3 (~100 ms) are far
over the 0.5 ms signature budget, number-parser takes ~1 ms, text2num leaves small
numbers as words by design, spaCy ships no English model on PyPI (so no NER, and
negspacy needs one), and WordNet's data is downloaded at run time rather than
installed. The number, unit, date, negation and antonym rules here are therefore small
hand-written tables (:mod:`llmemo.verify._lexicon`) and regular expressions.

Signatures. :meth:`RulesVerifier.signature` returns a compact JSON dict of the features
(schema below); with ``store_text=False`` every string taken from the prompt is replaced
by a keyed BLAKE2b digest (typo tolerance then uses stored digests of one-deletion
variants), so the signature contains no prompt text. Hashing is pseudonymisation: with
the default empty key, common words can be guessed by hashing a dictionary; pass a
secret ``hash_key`` to prevent that.

Schema (version 2), every field optional except ``v``::

    v: 2                  version of these rules
    h: 0 | 1              strings are digests (store_text=False)
    w: [str]              content words (lowercase; digests of their stems when h=1)
    f: str                one flag per word: "." plain, "l" light, "e" entity,
                          "a" acronym (also an entity)
    d: [str]              h=1 only: per word, base64 of 4-byte digests of the word and
                          its one-deletion variants ("" for short words)
    x: [[i, str]]         word i carries a negative affix; str is the base's key
    p: [[axis, +1|-1]]    polarity words from the lexicon, by axis
    n: int                negators
    q: [[kind, unit, [value], role]]  quantities (values are digests when h=1)
    o: str                order of units: "w" word, "q" quantity (for acronyms)
    i: [[key, start, length]]  initials of runs of units (for acronyms)
    r: [[i, role]]        roles of words ("from", "to", "than", "vs", "via")
    L: int                the text's length, when it exceeds ``max_chars``: nothing else
                          is analysed and no semantic hit is accepted for it
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmemo._json import fast_dumps
from llmemo._lru import LRU
from llmemo.errors import ConfigurationError, MissingDependencyError
from llmemo.verify import _lexicon as lex
from llmemo.verify.base import Candidate, Verdict

__all__ = ["DEFAULT_MAX_CHARS", "RULES_VERSION", "WORDING_STATS", "RulesVerifier"]

#: Version of the feature schema and rules; entries signed by another version are
#: re-analysed from nothing and rejected (see :meth:`RulesVerifier.verify`).
RULES_VERSION = 2

#: Default ``max_chars`` of :class:`RulesVerifier`: longer prompts are served only by exact
#: repeats (see the parameter).
DEFAULT_MAX_CHARS = 2_000

#: What :meth:`RulesVerifier.assess` measures when the wording decides, in order: the
#: overlap of wording (Dice, 0..1), unmatched content words in the cached and the new
#: prompt, content words in each, all words (content and function) in each, and whether
#: the pair counts as a minimal contrast (1.0) or as reworded (0.0).
WORDING_STATS = (
    "overlap",
    "unmatched_cached",
    "unmatched_new",
    "content_cached",
    "content_new",
    "words_cached",
    "words_new",
    "minimal_contrast",
)

#: The checks a :class:`RulesVerifier` can run.
CHECKS = frozenset({"quantities", "polarity", "entities", "roles", "details"})

_INSTALL_HINT = "it is a dependency of llmemo: pip install snowballstemmer"

# ---------------------------------------------------------------------------------------
# Stemming (lazy import, cached)
# ---------------------------------------------------------------------------------------

# A Snowball stemmer keeps the word being stemmed in the object (its cursor, limits and
# current string): it is not thread-safe. One shared by threads raised IndexError and
# returned another thread's stem, which the cache below then kept for the life of the
# process. So each thread gets its own (~3 us to build, on its first new word). Measured
# against one stemmer behind a lock: ~0.1 us per call over an unguarded call here vs
# ~0.3 us for the lock, and 16 threads stemming new words finish ~20 % sooner (the
# lock serialises them); both are noise next to a stem (~40 us) and neither is on the
# hot path (the cache below).
_local = threading.local()


def _load_stemmer() -> Any:
    """This thread's Snowball English stemmer, built on first use in each thread.

    Raises:
        MissingDependencyError: snowballstemmer is not installed.
    """
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        try:
            import snowballstemmer
        except ImportError as exc:
            raise MissingDependencyError(
                f"RulesVerifier needs snowballstemmer ({exc}); {_INSTALL_HINT}"
            ) from exc
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    # Stems are cached (lru_cache is thread-safe; two threads missing the same word both
    # compute the same stem): prompts share most of their vocabulary, and the
    # pure-Python stemmer costs ~40 us per new word.
    stem: str = _load_stemmer().stemWord(word)
    return stem


# ---------------------------------------------------------------------------------------
# Lexicon indexes, built once on first use
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Index:
    axes: dict[str, tuple[tuple[str, int], ...]]  # stem -> ((axis, pole), ...)
    compound_axes: dict[str, tuple[tuple[str, int], ...]]  # hyphenated form -> ...
    synonym_axes: frozenset[str]
    synonyms: dict[str, int]  # stem -> synonym group
    false_friend_stems: frozenset[str]
    calendar_fuzzy: dict[str, str]
    implicit_negators: frozenset[str]  # stems
    implicit_negators_before_to: frozenset[str]  # stems
    generic: frozenset[str]  # stems


# Axes whose same-pole words are near-synonyms, so that they may stand in for each other
# ("cancel"/"end", "bigger"/"larger"). On the others, same pole does not mean same thing
# ("mother"/"wife", "summer"/"warm").
_SYNONYM_AXES = frozenset(
    {
        "active",
        "open",
        "lock",
        "include",
        "permit",
        "accept",
        "add",
        "more",
        "grade",
        "when",
        "early",
        "good",
        "busy",
        "fast",
        "cheap",
        "long",
        "heavy",
        "true",
        "same",
        "sequence",
        "easy",
        "wet",
        "load",
    }
)


@functools.lru_cache(maxsize=1)
def _index() -> _Index:
    axes: dict[str, list[tuple[str, int]]] = {}
    compound: dict[str, list[tuple[str, int]]] = {}
    for axis, (plus, minus) in lex.AXES.items():
        for pole, words in ((1, plus), (-1, minus)):
            for word in words:
                target = compound if "-" in word else axes
                key = word if "-" in word else _stem(word)
                entries = target.setdefault(key, [])
                if (axis, pole) not in entries:
                    entries.append((axis, pole))
    fuzzy: dict[str, str] = {}
    for word, token in lex.CALENDAR.items():
        if len(word) >= 5 and (token.startswith(("dow", "mon"))):
            for variant in _deletions(word):
                fuzzy.setdefault(variant, token)
    synonyms: dict[str, int] = {}
    for group, words in enumerate(lex.SYNONYMS):
        for word in words:
            synonyms.setdefault(_stem(word), group)
    return _Index(
        axes={k: tuple(v) for k, v in axes.items()},
        synonyms=synonyms,
        compound_axes={k: tuple(v) for k, v in compound.items()},
        synonym_axes=_SYNONYM_AXES,
        false_friend_stems=frozenset(_stem(w) for w in lex.PREFIX_FALSE_FRIENDS),
        calendar_fuzzy=fuzzy,
        implicit_negators=frozenset(_stem(w) for w in lex.IMPLICIT_NEGATORS),
        implicit_negators_before_to=frozenset(_stem(w) for w in lex.IMPLICIT_NEGATORS_BEFORE_TO),
        generic=frozenset(_stem(w) for w in lex.GENERIC_NOUNS),
    )


#: Longest word looked up as a misspelt calendar word ("wednesday" + one extra letter...).
_MAX_CALENDAR_TYPO = 12


def _deletions(word: str) -> set[str]:
    """The word and every string one deletion away from it."""
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<money>[£$€¥₹]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:k|m|mn|bn)\b)?)
  | (?P<num>\d[\d,]*(?:[.:]\d+)?)(?P<suffix>%|°[cf]|[a-z]+\b)?
  | (?P<word>[a-z][a-z0-9]*(?:'[a-z]+)?(?:\.[a-z]\.)?)
  | (?P<hyphen>-(?=\w))
  | (?P<punct>[.?!,;:()"/])
    """,
    re.IGNORECASE | re.VERBOSE,
)
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_SENTENCE_END = frozenset(".?!")
_DETERMINERS = frozenset(
    "a an the my your our their his her its this that these those some of and & any".split()
)
_AM_PM = {"am": "am", "pm": "pm", "a.m.": "am", "p.m.": "pm"}
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
_RATE_WORDS = {
    "hourly": "3600",
    "daily": "86400",
    "weekly": "604800",
    "fortnightly": "1209600",
    "monthly": "mo1",
    "annual": "mo12",
    "annually": "mo12",
    "yearly": "mo12",
}
_RATE_MARKERS = frozenset({"per", "a", "an", "each", "every"})
_NEGATIVE_SUFFIX_COMPOUNDS = frozenset({"free", "less"})
_NO_NUMBER_BEFORE = frozenset({"the", "which", "no", "any", "every", "each", "this", "that"})
_NO_NUMBER_AFTER = frozenset(
    "of or another and more that which who to is are for in on at with by than".split()
)
_RELATIVE = {"this": "0", "next": "+1", "last": "-1", "previous": "-1", "coming": "+1"}
_PERIODS = {"week": "w", "month": "m", "year": "y", "weekend": "we"}


@dataclass(slots=True)
class _Tok:
    kind: str  # money | num | word | hyphen | punct
    text: str  # surface form (after quote normalisation)
    low: str
    suffix: str = ""
    consumed: bool = False  # used up by a quantity, date, greeting or compound
    in_compound: bool = False
    sentence_start: bool = False


def _tokens(text: str) -> list[_Tok]:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    out: list[_Tok] = []
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup or ""
        if kind == "suffix":
            kind = "num"
        surface = match.group(kind) if kind != "num" else match.group("num")
        suffix = (match.group("suffix") or "") if kind == "num" else ""
        low = surface.lower()
        if kind == "word" and low.endswith("'s") and len(low) > 3:
            # Possessive (or "is"): "year's" -> "year", "Lloyds'" is not matched at all.
            low = low[:-2]
            surface = surface[:-2]
        out.append(_Tok(kind, surface, low, suffix.lower()))
    start = True
    for tok in out:
        if tok.kind == "punct":
            # A quotation or bracket opens a title-cased span: its first word is not a name
            # because of its capital.
            start = start or tok.text in _SENTENCE_END or tok.text in {'"', "("}
            continue
        if tok.kind == "hyphen":
            continue
        tok.sentence_start = start
        start = False
    return out


# ---------------------------------------------------------------------------------------
# Analysis: text -> features
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Quantity:
    kind: str  # n number, m money, c currency, u measure, t clock time, D calendar, r rate
    unit: str
    values: list[str]
    role: str = ""
    pos: int = -1  # token index (analysis only)

    def show(self) -> str:
        value = self.values[0] if self.values else ""
        if self.kind == "m":
            return f"{self.unit} {value}"
        if self.kind == "u":
            return f"{value} {self.unit}"
        if self.kind == "c":
            return self.unit
        if self.kind == "r":
            return f"per {value}"
        return value


@dataclass(slots=True)
class _Word:
    raw: str  # lowercase surface
    flag: str  # "." plain, "l" light, "e" entity, "a" acronym
    role: str = ""
    pos: int = -1  # token index (analysis only)
    tags: tuple[str, ...] = ()  # lexicon groups: "ax:<axis>:<pole>", "syn:<group>"


@dataclass(slots=True)
class _Analysis:
    words: list[_Word] = field(default_factory=list)
    quantities: list[_Quantity] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    negators: int = 0
    polarity: list[tuple[str, int]] = field(default_factory=list)
    affixed: list[tuple[int, str]] = field(default_factory=list)  # (word index, base raw)
    frame: list[str] = field(default_factory=list)  # function words, in order


def _fmt(value: float) -> str:
    return format(round(value, 6), "g")


def _parse_digits(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _shouting(tokens: Sequence[_Tok]) -> bool:
    letters = [c for t in tokens if t.kind == "word" for c in t.text if c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) > 0.6 * len(letters)


class _Analyser:
    """Turns one prompt into features; one instance per call (holds per-call state)."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.out = _Analysis()
        self.shouting = _shouting(self.toks)
        self.index = _index()
        # clock times with an unknown half of the day, waiting for "morning"/"pm"
        self.open_times: list[_Quantity] = []
        self.cursor = 0  # token index of the unit being added

    # -- helpers --------------------------------------------------------------------

    def _is_number_sign(self, i: int) -> bool:
        """Whether the token at ``i`` ("no") is followed by "." and a number."""
        toks = self.toks
        return (
            i + 2 < len(toks)
            and toks[i + 1].kind == "punct"
            and toks[i + 1].text == "."
            and toks[i + 2].kind == "num"
        )

    def _word_at(self, i: int) -> str | None:
        if 0 <= i < len(self.toks) and self.toks[i].kind == "word":
            return self.toks[i].low
        return None

    def _next_word_index(self, i: int) -> int | None:
        j = i + 1
        while j < len(self.toks) and self.toks[j].kind == "hyphen":
            j += 1
        return j if j < len(self.toks) and self.toks[j].kind == "word" else None

    def _add_quantity(self, q: _Quantity) -> None:
        q.pos = self.cursor
        self.out.quantities.append(q)

    # -- passes ---------------------------------------------------------------------

    def run(self) -> _Analysis:
        self._greeting()
        self._compounds()
        self._numbers()
        self._calendar()
        self._currencies_and_rates()
        self.open_times.clear()
        self._words()
        units = [(q.pos, "q") for q in self.out.quantities] + [(w.pos, "w") for w in self.out.words]
        self.out.quantities.sort(key=lambda q: q.pos)
        self.out.order = [kind for _, kind in sorted(units)]
        return self.out

    def _greeting(self) -> None:
        toks = self.toks
        i = 0
        while i < len(toks) and toks[i].kind == "word":
            low = toks[i].low
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if low in {"hi", "hello", "hey", "hiya", "um", "uh", "erm", "so", "ok", "okay"}:
                toks[i].consumed = True
                i += 1
            elif low == "good" and self._word_at(i + 1) in {"morning", "afternoon", "evening"}:
                toks[i].consumed = toks[i + 1].consumed = True
                i += 2
            elif low in lex.GREETINGS and nxt is not None and nxt.kind == "punct":
                toks[i].consumed = True
                i += 1
            elif i > 0 and toks[i - 1].consumed and low in lex.GREETING_TAIL:
                toks[i].consumed = True
                i += 1
            else:
                break
            while i < len(toks) and toks[i].kind == "punct" and toks[i].text in ",!":
                i += 1
        if i:
            for tok in toks[i:]:
                if tok.kind == "word":
                    tok.sentence_start = True
                    break

    def _compounds(self) -> None:
        """Word-hyphen-word: join short parts, mark negative affixes, split the rest."""
        toks = self.toks
        i = 0
        while i < len(toks):
            if toks[i].kind != "word":
                i += 1
                continue
            j = i
            parts = [i]
            while j + 2 < len(toks) and toks[j + 1].kind == "hyphen" and toks[j + 2].kind == "word":
                j += 2
                parts.append(j)
            if len(parts) > 1:
                self._compound(parts)
            i = j + 1

    def _compound(self, parts: list[int]) -> None:
        toks = self.toks
        words = [toks[p].low for p in parts]
        joined = "-".join(words)
        first = toks[parts[0]]
        for p in parts:
            toks[p].in_compound = True
        if (
            joined in self.index.compound_axes
            or all(len(w) <= 2 for w in words)
            or (len(words[0]) == 1)
        ):
            # "e-mail", "wi-fi", "off-peak": one word.
            first.low = "".join(words) if joined not in self.index.compound_axes else joined
            first.text = "".join(toks[p].text for p in parts)
            for p in parts[1:]:
                toks[p].consumed = True
            return
        if words[0] in {"non", "un", "in", "dis", "anti"} and len(parts) >= 2:
            # "non-members": one negatively affixed word.
            head = toks[parts[1]]
            head.low = words[0] + head.low
            head.text = first.text + head.text
            head.suffix = "neg:" + words[1]
            first.consumed = True
            return
        if words[-1] in _NEGATIVE_SUFFIX_COMPOUNDS and len(parts) >= 2:
            # "gluten-free", "hands-free": without the base.
            base = toks[parts[-2]]
            base.suffix = "neg:" + base.low
            base.low = base.low + words[-1]
            toks[parts[-1]].consumed = True
            return
        # Other compounds ("self-employed", "part-time") stay as their parts.

    def _numbers(self) -> None:
        toks = self.toks
        i = 0
        while i < len(toks):
            tok = toks[i]
            if tok.consumed:
                i += 1
                continue
            self.cursor = i
            if tok.kind == "money":
                i = self._money(i)
            elif tok.kind == "num":
                i = self._digits(i)
            elif tok.kind == "word" and (
                tok.low in lex.NUMBER_WORDS or tok.low in lex.ORDINAL_WORDS or tok.low == "half"
            ):
                i = self._number_words(i)
            elif tok.kind == "word" and tok.low in {"a", "an"}:
                i = self._article_unit(i)
            else:
                i += 1

    def _money(self, i: int) -> int:
        tok = self.toks[i]
        text = tok.low.replace(" ", "")
        currency = lex.CURRENCY_SYMBOLS.get(text[0], "?")
        m = re.match(r"[^\d]*(\d[\d,]*(?:\.\d+)?)([a-z]*)", text)
        value = _parse_digits(m.group(1)) if m else None
        if value is None:
            return i + 1
        scale = lex.SCALE_WORDS.get(m.group(2), 1) if m and m.group(2) else 1
        end = i + 1
        nxt = self._word_at(end)
        if scale == 1 and nxt in lex.SCALE_WORDS and nxt not in {"m", "k"}:
            scale = lex.SCALE_WORDS[nxt]
            self.toks[end].consumed = True
            end += 1
        tok.consumed = True
        self._add_quantity(_Quantity("m", currency, [_fmt(value * scale)]))
        return end

    def _digits(self, i: int) -> int:
        tok = self.toks[i]
        tok.consumed = True
        suffix = tok.suffix
        if ":" in tok.low:
            hour, _, minute = tok.low.partition(":")
            return self._clock(i + 1, int(hour), int(minute), suffix)
        value = _parse_digits(tok.low)
        if value is None:
            return i + 1
        if suffix in _AM_PM:
            half = _AM_PM[suffix]
            return self._clock(i + 1, int(value), round((value % 1) * 100), half)
        if "." in tok.low and self._next_is_am_pm(i + 1):
            whole = int(value)
            return self._clock(i + 1, whole, round((value - whole) * 100), "")
        if suffix in _ORDINAL_SUFFIXES:
            self._add_quantity(_Quantity("n", "", [_fmt(value)]))
            return i + 1
        if suffix in lex.SCALE_WORDS:
            value *= lex.SCALE_WORDS[suffix]
            suffix = ""
        if suffix and suffix not in lex.UNITS and suffix not in lex.CURRENCY_WORDS:
            # "2FA", "4G", "3D": a code, compared as a word.
            tok.consumed = False
            tok.kind = "word"
            tok.low = tok.low + suffix
            tok.text = tok.text + suffix.upper()
            return i + 1
        return self._after_number(i + 1, value, suffix)

    def _next_is_am_pm(self, j: int) -> bool:
        return self._word_at(j) in _AM_PM

    def _clock(self, j: int, hour: int, minute: int, half: str) -> int:
        if not half and self._word_at(j) in _AM_PM:
            half = _AM_PM[self._word_at(j) or ""]
            self.toks[j].consumed = True
            j += 1
        if not half and self._word_at(j) == "o'clock":
            self.toks[j].consumed = True
            j += 1
        self._add_time(hour, minute, half)
        return j

    def _add_time(self, hour: int, minute: int, half: str) -> None:
        if half == "pm" and hour < 12:
            hour += 12
        elif half == "am" and hour == 12:
            hour = 0
        value = f"{hour}:{minute:02d}"
        q = _Quantity("t", "", [value])
        if not half and 1 <= hour <= 12:
            q.values.append(f"{(hour % 12) + 12 if hour != 12 else 0}:{minute:02d}")
            self.open_times.append(q)
        self._add_quantity(q)

    def _number_words(self, i: int) -> int:
        toks = self.toks
        low = toks[i].low
        if low in lex.ORDINAL_WORDS:
            nxt = self._word_at(i + 1)
            prev = self._word_at(i - 1)
            # "first" before a noun or after "the" is an ordinal; "at first", "... first?"
            # is an adverb.
            if prev == "at" or nxt is None:
                return i + 1
            toks[i].consumed = True
            self._add_quantity(_Quantity("n", "", [str(lex.ORDINAL_WORDS[low])]))
            return i + 1
        if low == "half":
            nxt = self._word_at(i + 1)
            after = self._word_at(i + 2) if nxt in {"a", "an"} else nxt
            if after in lex.UNITS:
                toks[i].consumed = True
                return self._after_number(i + 1, 0.5, "")
            return i + 1
        if low == "one":
            prev = self._word_at(i - 1)
            nxt_i = self._next_word_index(i)
            nxt = toks[nxt_i].low if nxt_i is not None else None
            # "one egg" is a number; "one of", "which one", "one can" are pronouns.
            if (
                prev in _NO_NUMBER_BEFORE
                or nxt is None
                or nxt in _NO_NUMBER_AFTER
                or (nxt in lex.STOPWORDS and nxt not in lex.UNITS)
                or nxt in lex.LIGHT_WORDS
            ):
                return i + 1
        total = 0.0
        current = 0.0
        j = i
        seen = False
        while j < len(toks):
            w = toks[j]
            if w.kind == "hyphen":
                j += 1
                continue
            if w.kind != "word":
                break
            if w.low in lex.NUMBER_WORDS:
                current += lex.NUMBER_WORDS[w.low]
            elif w.low in lex.SCALE_WORDS and seen and w.low not in {"m", "k"}:
                scale = lex.SCALE_WORDS[w.low]
                if scale == 100:
                    current = (current or 1) * 100
                else:
                    total += (current or 1) * scale
                    current = 0
            elif w.low == "and" and seen and self._word_at(j + 1) in lex.NUMBER_WORDS:
                pass
            else:
                break
            w.consumed = True
            seen = True
            j += 1
        # A trailing hyphen belongs to a compound ("two-day"): keep the unit after it.
        while j > i and toks[j - 1].kind == "hyphen":
            j -= 1
        return self._after_number(j, total + current, "")

    def _article_unit(self, i: int) -> int:
        """ "a week", "an hour": one unit, unless it is a rate ("5 days a week")."""
        nxt = self._word_at(i + 1)
        if nxt is None or nxt not in lex.UNITS or lex.UNITS[nxt][0] != "dur":
            return i + 1
        prev_q = i > 0 and self.toks[i - 1].consumed and self.toks[i - 1].kind != "word"
        prev_unit = self._word_at(i - 1) in lex.UNITS
        if prev_q or prev_unit:
            return i + 1  # a rate; handled with rates
        self.toks[i].consumed = True
        return self._after_number(i + 1, 1.0, "")

    def _after_number(self, j: int, value: float, suffix: str) -> int:
        """Attach what follows a number: scale, currency, unit, time of day."""
        toks = self.toks
        unit_word = suffix
        if not unit_word:
            while j < len(toks) and toks[j].kind == "hyphen":
                j += 1
            nxt = self._word_at(j)
            if nxt in lex.SCALE_WORDS and nxt not in {"m", "k"}:
                value *= lex.SCALE_WORDS[nxt]
                toks[j].consumed = True
                j += 1
                nxt = self._word_at(j)
            if nxt == "per" and self._word_at(j + 1) == "cent":
                toks[j].consumed = toks[j + 1].consumed = True
                self._add_quantity(_Quantity("u", "%", [_fmt(value)]))
                return j + 2
            if nxt in _AM_PM or nxt == "o'clock":
                return self._clock(j, int(value), round((value % 1) * 100), "")
            if nxt is not None and (nxt in lex.UNITS or nxt in lex.CURRENCY_WORDS):
                unit_word = nxt
                toks[j].consumed = True
                j += 1
            elif nxt is not None and nxt.upper() in lex.CURRENCY_CODES:
                toks[j].consumed = True
                self._add_quantity(_Quantity("m", nxt.upper(), [_fmt(value)]))
                return j + 1
            elif nxt in {"in", "at"} and self._word_at(j + 1) == "the":
                tod = self._word_at(j + 2)
                if tod in lex.TIME_OF_DAY and value <= 12 and value == int(value):
                    for k in (j, j + 1, j + 2):
                        toks[k].consumed = True
                    self._add_time(int(value), 0, lex.TIME_OF_DAY[tod or ""])
                    return j + 3
        if unit_word in lex.CURRENCY_WORDS:
            code, factor = lex.CURRENCY_WORDS[unit_word]
            self._add_quantity(_Quantity("m", code, [_fmt(value * factor)]))
            return j
        if unit_word in lex.UNITS:
            dimension, unit, factor = lex.UNITS[unit_word]
            # "17 years old" / "17-year-old": an age.
            if dimension == "dur" and unit == "mo" and factor == 12 and self._word_at(j) == "old":
                toks[j].consumed = True
                dimension, unit, factor = lex.UNITS["year-old"]
                j += 1
            elif dimension == "dur" and self._word_at(j) == "old":
                pass
            if dimension == "age":
                self._add_quantity(_Quantity("u", "age", [_fmt(value)]))
            elif dimension == "pct":
                self._add_quantity(_Quantity("u", "%", [_fmt(value)]))
            else:
                self._add_quantity(_Quantity("u", f"{dimension}:{unit}", [_fmt(value * factor)]))
            return j
        if unit_word.upper() in lex.CURRENCY_CODES:
            self._add_quantity(_Quantity("m", unit_word.upper(), [_fmt(value)]))
            return j
        self._add_quantity(_Quantity("n", "", [_fmt(value)]))
        return j

    def _calendar(self) -> None:
        toks = self.toks
        for i, tok in enumerate(toks):
            if tok.kind != "word" or tok.consumed:
                continue
            self.cursor = i
            low = tok.low
            token = lex.CALENDAR.get(low)
            if token is None and low in {"may", "march"} and not tok.text[0].isupper():
                continue
            if low == "may" and (tok.sentence_start or not tok.text[0].isupper()):
                continue
            if token is None and 5 <= len(low) <= _MAX_CALENDAR_TYPO and low not in lex.STOPWORDS:
                for variant in _deletions(low):
                    token = self.index.calendar_fuzzy.get(variant)
                    if token is not None:
                        break
            back = i - 1
            while back >= 0 and toks[back].kind == "hyphen":
                back -= 1
            prev = self._word_at(back)
            if token is None:
                period = _PERIODS.get(low)
                if period and prev in _RELATIVE and not toks[back].consumed:
                    toks[back].consumed = tok.consumed = True
                    self._add_quantity(_Quantity("D", "", [f"rel:{_RELATIVE[prev]}{period}"]))
                elif low == "day" and prev in {"same", "next"}:
                    toks[back].consumed = tok.consumed = True
                    rel = "0d" if prev == "same" else "+1d"
                    self._add_quantity(_Quantity("D", "", [f"rel:{rel}"]))
                continue
            tok.consumed = True
            if prev in _RELATIVE and not toks[back].consumed and token.startswith("dow"):
                toks[back].consumed = True
                token = f"{token}:{_RELATIVE[prev]}"
            self._add_quantity(_Quantity("D", "", [token]))
            if low == "tonight":
                self._add_quantity(_Quantity("D", "", ["tod:evening"]))

    def _currencies_and_rates(self) -> None:
        toks = self.toks
        for i, tok in enumerate(toks):
            if tok.kind != "word" or tok.consumed:
                continue
            self.cursor = i
            low = tok.low
            if tok.text.upper() == tok.text and low.upper() in lex.CURRENCY_CODES:
                tok.consumed = True
                self._add_quantity(_Quantity("c", low.upper(), []))
            elif low in lex.CURRENCY_WORDS and low not in {"p", "cent", "cents", "pence"}:
                tok.consumed = True
                self._add_quantity(_Quantity("c", lex.CURRENCY_WORDS[low][0], []))
            elif low in _RATE_WORDS:
                tok.consumed = True
                self._add_quantity(_Quantity("r", "", [_RATE_WORDS[low]]))
            elif low in _RATE_MARKERS:
                nxt = self._word_at(i + 1)
                if nxt in lex.UNITS and lex.UNITS[nxt or ""][0] == "dur":
                    _, unit, factor = lex.UNITS[nxt or ""]
                    tok.consumed = toks[i + 1].consumed = True
                    period = f"mo{_fmt(factor)}" if unit == "mo" else _fmt(factor)
                    self._add_quantity(_Quantity("r", "", [period]))
            elif low in lex.TIME_OF_DAY and low != "tonight":
                tok.consumed = True
                half = lex.TIME_OF_DAY[low]
                if self.open_times and half in {"am", "pm"}:
                    q = self.open_times.pop(0)
                    q.values = [q.values[0] if half == "am" else q.values[-1]]
                    continue
                name = low.rstrip("s")
                name = "evening" if name == "night" else name
                self._add_quantity(_Quantity("D", "", [f"tod:{name}"]))

    def _words(self) -> None:
        toks = self.toks
        out = self.out
        role = ""
        clause_has_from = False
        starts = {q.pos: q for q in out.quantities}
        for i, tok in enumerate(toks):
            if tok.kind == "punct":
                role = ""
                if tok.text in _SENTENCE_END or tok.text in ",;:":
                    clause_has_from = False
                continue
            quantity = starts.get(i)
            if quantity is not None and role and not quantity.role:
                quantity.role = role
            if tok.kind != "word" or tok.consumed:
                continue
            low = tok.low
            if low in lex.CONTRACTIONS or low.replace("'", "") in _BARE_CONTRACTIONS:
                out.negators += 1
                out.frame.append("not")
                role = ""
                continue
            if low == "no" and self._is_number_sign(i):
                continue  # "No. 5": the abbreviation of "number", not a negation
            if low in lex.NEGATORS and not tok.in_compound:
                if low == "no" and self._word_at(i + 1) in {"longer"}:
                    toks[i + 1].consumed = True
                out.negators += 1
                out.frame.append("not")
                role = ""
                continue
            if self._implicit_negator(i, low):
                # "avoid X" = "not X", "failed to pay" = "did not pay": a negation that
                # no tolerance for reworded details may excuse.
                out.negators += 1
                out.frame.append("not")
                role = ""
                continue
            if low in lex.ROLE_WORDS:
                out.frame.append(_frame_word(low))
                new_role = lex.ROLE_WORDS[low]
                if low == "from":
                    clause_has_from = True
                if low == "to" and not self._to_is_role(i, clause_has_from):
                    role = ""
                    continue
                role = new_role
                continue
            if low in lex.PARTICLE_AXES and (not tok.in_compound or self._after_hyphen(i)):
                particle = self._particle(i, low)
                if particle is not None:
                    out.polarity.append(particle)
                    out.frame.append(_frame_word(low))
                    continue
            if low in lex.QUANTITY_BOUNDS and self._before_quantity(i):
                out.polarity.append(lex.QUANTITY_BOUNDS[low])
                out.frame.append(_frame_word(low))
                continue
            country = (
                tok.text.upper() == tok.text and low in lex.COUNTRY_ALIASES and not self.shouting
            )
            if not country and (
                low in lex.STOPWORDS or low in _EXTRA_STOP or _pronoun_contraction(low)
            ):
                out.frame.append(_frame_word(low))
                if low not in _DETERMINERS:
                    role = ""
                continue
            self._content_word(i, tok, low, role)

    def _content_word(self, pos: int, tok: _Tok, low: str, role: str) -> None:
        out = self.out
        index = self.index
        is_acronym = (
            not self.shouting
            and len(tok.text) >= 2
            and tok.text.upper() == tok.text
            and any(c.isalpha() for c in tok.text)
            and tok.text not in lex.ACRONYM_STOP
        )
        is_entity = is_acronym or (
            not self.shouting
            and tok.text[:1].isupper()
            and (not tok.sentence_start or any(c.isupper() for c in tok.text[1:]))
            and low not in lex.LIGHT_WORDS
        )
        if (
            not is_entity
            and not self.shouting
            and any(c.isupper() for c in tok.text[1:])
            and any(c.islower() for c in tok.text)
        ):
            is_entity = True  # "iPhone", "HubSpot" at the start of a sentence
        word_index = len(out.words)
        if is_acronym:
            flag = "a"
            low = lex.COUNTRY_ALIASES.get(low, low)
        elif is_entity:
            flag = "e"
            low = lex.COUNTRY_ALIASES.get(low, low)
        elif low in lex.LIGHT_WORDS or self._question_word(pos) or self._phrasal_verb(pos):
            flag = "l"
        else:
            flag = "."
            if low in {"america", "britain", "europe", "emirates"}:
                low = lex.COUNTRY_ALIASES[low]
                flag = "e"
        stem = _stem(low)
        poles = index.axes.get(stem) or index.compound_axes.get(low) or ()
        out.polarity.extend(poles)
        tags = tuple(f"ax:{axis}:{pole}" for axis, pole in poles)
        group = index.synonyms.get(stem)
        if group is not None:
            tags += (f"syn:{group}",)
        if flag == "." and stem in index.generic:
            tags += (_GENERIC_TAG,)
        out.words.append(_Word(low, flag, role, pos, tags))
        if tok.suffix.startswith("neg:"):
            out.affixed.append((word_index, tok.suffix[4:]))
        elif flag in {".", "l"}:
            base = _negative_base(low, index)
            if base is not None:
                out.affixed.append((word_index, base))

    def _implicit_negator(self, i: int, low: str) -> bool:
        """A verb that negates its complement ("avoid", "refute"; "fail" before "to")."""
        if self.toks[i].in_compound or low in lex.STOPWORDS:
            return False
        stem = _stem(low)
        if stem in self.index.implicit_negators:
            return True
        return stem in self.index.implicit_negators_before_to and self._word_at(i + 1) == "to"

    def _after_hyphen(self, i: int) -> bool:
        """The particle of a hyphenated phrasal noun ("check-in", "log-out")."""
        return i >= 2 and self.toks[i - 1].kind == "hyphen" and self.toks[i - 2].kind == "word"

    def _question_word(self, i: int) -> bool:
        """ "long" in "how long", "days" in "how many days": part of the question word."""
        prev = self._word_at(i - 1)
        low = self.toks[i].low
        if prev == "how" and low in _HOW_WORDS:
            return True
        unit = lex.UNITS.get(low)
        return (
            prev in {"many", "much"}
            and self._word_at(i - 2) == "how"
            and unit is not None
            and unit[0] == "dur"
        )

    def _phrasal_verb(self, i: int) -> bool:
        """The verb of "turn off"/"log in": its particle carries the meaning."""
        particles = lex.PHRASAL_VERBS.get(_stem(self.toks[i].low))
        if not particles:
            return False
        for j in (i + 1, i + 2, i + 3):
            low = self._word_at(j)
            if low in particles:
                return True
            if low is None:
                return False
        return False

    # -- role helpers ---------------------------------------------------------------

    def _to_is_role(self, i: int, clause_has_from: bool) -> bool:
        """ "to" marks a destination before a noun phrase, not before a verb."""
        if clause_has_from:
            return True
        j = i + 1
        if j >= len(self.toks):
            return False
        nxt = self.toks[j]
        if nxt.kind in {"money", "num"}:
            return True
        if nxt.kind != "word":
            return False
        return nxt.low in _DETERMINERS or nxt.text[:1].isupper() or nxt.consumed

    def _particle(self, i: int, particle: str) -> tuple[str, int] | None:
        """The polarity of "on"/"off"/"in"/"out"/... after a phrasal verb, if any."""
        for back in (1, 2, 3):
            j = i - back
            if j < 0 or self.toks[j].kind == "punct":
                return None
            if self.toks[j].kind == "word":
                verb = _stem(self.toks[j].low)
                if particle in lex.PHRASAL_VERBS.get(verb, ()):
                    return lex.PARTICLE_AXES[particle]
        return None

    def _before_quantity(self, i: int) -> bool:
        j = i + 1
        while (
            j < len(self.toks)
            and self.toks[j].kind == "word"
            and self.toks[j].low
            in {
                "the",
                "a",
                "an",
            }
        ):
            j += 1
        if j >= len(self.toks):
            return False
        tok = self.toks[j]
        return tok.kind in {"money", "num"} or tok.low in lex.NUMBER_WORDS


_BARE_CONTRACTIONS = frozenset(
    k.replace("'", "") for k in lex.CONTRACTIONS if k not in {"cannot", "won't", "can't"}
) | {"cant", "wont", "cannot"}
_EXTRA_STOP = frozenset(
    "whats hows wheres whos thats im ive id youre theyre theres lets ur u pls plz".split()
)
_HOW_WORDS = frozenset("long often old far soon late early".split())
_PRONOUNS = frozenset("i you we they he she it that there what who where how".split())


# Closed vocabulary of function words stored (as indexes) to compare sentence frames.
_FRAME_VOCAB: tuple[str, ...] = tuple(
    sorted(
        lex.STOPWORDS
        | set(lex.ROLE_WORDS)
        | set(lex.PARTICLE_AXES)
        | set(lex.QUANTITY_BOUNDS)
        | {"not"}
    )
)
_FRAME_CODE = {word: index for index, word in enumerate(_FRAME_VOCAB)}
_EXTRA_STOP_HEADS = {"im": "i", "ive": "i", "id": "i", "youre": "you", "theyre": "they"}


def _frame_word(low: str) -> str:
    """The function word of the frame that ``low`` stands for ("whats" -> "what")."""
    if low in _FRAME_CODE:
        return low
    head = low.partition("'")[0]
    if head in _FRAME_CODE:
        return head
    head = _EXTRA_STOP_HEADS.get(low, low[:-1] if low.endswith("s") else low)
    return head if head in _FRAME_CODE else "a"


def _pronoun_contraction(low: str) -> bool:
    """ "I'm", "you're", "they'll", ... (the verb part is a function word too)."""
    head, sep, _ = low.partition("'")
    return bool(sep) and head in _PRONOUNS


def _negative_base(low: str, index: _Index) -> str | None:
    """The base of a negatively affixed word ("unsafe" -> "safe"), or None."""
    if _stem(low) in index.false_friend_stems:
        return None
    for prefix in lex.NEGATIVE_PREFIXES:
        if low.startswith(prefix) and len(low) - len(prefix) >= 3:
            rest = low[len(prefix) :]
            if prefix in {"im", "il", "ir"} and rest[0] not in {"p", "m", "b", "l", "r"}:
                continue
            return rest
    if low.endswith("less") and len(low) >= 7:
        return low[:-4]
    return None


# ---------------------------------------------------------------------------------------
# Signatures and their parsed form
# ---------------------------------------------------------------------------------------


class _Keys:
    """Maps strings taken from prompts to keys: themselves, or keyed digests."""

    def __init__(self, hashed: bool, key: bytes) -> None:
        self.hashed = hashed
        self.key = key
        # Identifies the key (not reversible): digests made with another key never match.
        self.fingerprint = hashlib.blake2b(b"llmemo-rules-key", digest_size=3, key=key).hexdigest()

    def __call__(self, value: str) -> str:
        if not self.hashed:
            return value
        digest = hashlib.blake2b(
            value.encode("utf-8", "surrogatepass"), digest_size=8, key=self.key
        )
        return base64.b64encode(digest.digest()).decode("ascii").rstrip("=")

    def short(self, values: Iterable[str]) -> str:
        """4-byte digests of ``values``, concatenated and base64-encoded."""
        raw = b"".join(
            hashlib.blake2b(
                v.encode("utf-8", "surrogatepass"), digest_size=4, key=self.key
            ).digest()
            for v in sorted(values)
        )
        return base64.b64encode(raw).decode("ascii")


def _word_key(word: str, flag: str) -> str:
    # Acronyms and codes are compared as written; other words by stem.
    return word if flag == "a" or any(c.isdigit() for c in word) else _stem(word)


#: Longest word given typo tolerance (one-deletion variants): a word's variants cost
#: time and space quadratic in its length, and words this long are not typed by hand.
_MAX_TYPO_WORD = 20


def _typo_capable(word: str) -> bool:
    return 4 <= len(word) <= _MAX_TYPO_WORD and word.isalpha()


_MAX_RUN = 5


def _initials(analysis: _Analysis) -> list[tuple[str, int, int]]:
    """Initials of runs of 2-5 consecutive units: acronym candidates ("2fa", "pac")."""
    letters: list[str] = []
    words = iter(analysis.words)
    quantities = iter(analysis.quantities)
    for kind in analysis.order:
        if kind == "w":
            word = next(words)
            letters.append(word.raw[:1] if word.flag != "a" else "")
        else:
            q = next(quantities)
            value = q.values[0] if q.kind == "n" and q.values else ""
            letters.append(value if value.isdigit() and len(value) == 1 else "")
    out: list[tuple[str, int, int]] = []
    for start in range(len(letters)):
        initials = ""
        for length in range(1, _MAX_RUN + 1):
            if start + length > len(letters) or not letters[start + length - 1]:
                break
            initials += letters[start + length - 1]
            if length >= 2:
                out.append((initials, start, length))
    return out


def _signature(text: str, keys: _Keys) -> dict[str, Any]:
    analysis = _Analyser(text).run()
    sig: dict[str, Any] = {"v": RULES_VERSION}
    if keys.hashed:
        sig["h"] = 1
        sig["k"] = keys.fingerprint
    if analysis.words:
        if keys.hashed:
            sig["w"] = [keys(_word_key(w.raw, w.flag)) for w in analysis.words]
            sig["d"] = [
                keys.short(_deletions(w.raw)) if _typo_capable(w.raw) else ""
                for w in analysis.words
            ]
        else:
            sig["w"] = [w.raw for w in analysis.words]
        sig["f"] = "".join(w.flag for w in analysis.words)
    tags = [[i, tag] for i, w in enumerate(analysis.words) for tag in w.tags]
    if tags:
        sig["s"] = tags
    if analysis.affixed:
        sig["x"] = [[i, keys(_stem(base))] for i, base in analysis.affixed]
    if analysis.polarity:
        sig["p"] = sorted({(axis, pole) for axis, pole in analysis.polarity})
        sig["p"] = [list(p) for p in sig["p"]]
    if analysis.negators:
        sig["n"] = analysis.negators
    if analysis.quantities:
        sig["q"] = [
            [q.kind, q.unit, [keys(v) for v in q.values], q.role] for q in analysis.quantities
        ]
    if analysis.words and analysis.quantities:
        sig["o"] = "".join(analysis.order)
    if analysis.frame:
        sig["g"] = ".".join(str(_FRAME_CODE[w]) for w in analysis.frame)
    initials = _initials(analysis)
    if initials:
        sig["i"] = [[keys(k), start, length] for k, start, length in initials]
    roles = [[i, w.role] for i, w in enumerate(analysis.words) if w.role]
    if roles:
        sig["r"] = roles
    return sig


@dataclass(slots=True)
class _Side:
    """A parsed signature, ready for comparison."""

    hashed: bool
    raw: list[str]  # display forms (text mode) or keys (hash mode)
    keys: list[str]
    flags: str
    # Per word, its typo variants (see variants()): the set, or in text mode the word
    # itself until first needed ("" when it gets none). Most words align by stem and
    # never need theirs, which are most of a parsed side's memory.
    deletions: list[frozenset[str] | str]
    affixed: dict[int, str]
    polarity: dict[str, set[int]]
    negators: int
    quantities: list[_Quantity]
    order: str
    initials: list[tuple[str, int, int]]
    roles: dict[int, str]
    tags: dict[int, set[str]]
    frame: list[str]
    # Derived once per parse (parsed sides are memoised, comparisons are not):
    by_key: dict[str, list[int]] = field(init=False)  # key -> word indexes, in order
    last_index: dict[str, int] = field(init=False)  # key -> its last word index
    bases: frozenset[str] = field(init=False)  # keys of affixed words' bases
    once: frozenset[str] = field(init=False)  # keys used by exactly one word
    frame_counts: Counter[str] = field(init=False)
    rates: frozenset[str] = field(init=False)
    unit_order: list[tuple[str, int]] = field(init=False)  # see units()
    has_roles: bool = field(init=False)  # a word or quantity carries a role
    content: list[int] = field(init=False)  # indexes of words that are not light
    # Whether this side compared with itself is "same content" under the verifier that
    # memoised it (set on first need; distance plays no part in that outcome).
    same_as_itself: bool | None = field(init=False, default=None)

    def variants(self, i: int) -> frozenset[str]:
        """Word ``i`` and its one-deletion variants (empty when it gets none)."""
        found = self.deletions[i]
        if isinstance(found, str):
            found = frozenset(_deletions(found)) if found else frozenset()
            self.deletions[i] = found  # one list store: safe if two threads race here
        return found

    def __post_init__(self) -> None:
        by_key: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            by_key.setdefault(key, []).append(i)
        self.by_key = by_key
        self.last_index = {key: indexes[-1] for key, indexes in by_key.items()}
        self.bases = frozenset(self.affixed.values())
        self.once = frozenset(key for key, indexes in by_key.items() if len(indexes) == 1)
        self.frame_counts = Counter(self.frame)
        self.rates = frozenset(v for q in self.quantities if q.kind == "r" for v in q.values)
        self.unit_order = self.units()
        self.has_roles = bool(self.roles) or any(q.role for q in self.quantities)
        self.content = [i for i, flag in enumerate(self.flags) if flag != "l"]

    @classmethod
    def parse(cls, sig: Mapping[str, Any]) -> _Side:
        hashed = bool(sig.get("h"))
        words = [str(w) for w in sig.get("w", [])]
        flags = str(sig.get("f", "." * len(words)))
        if len(flags) != len(words):
            raise ValueError("flags and words differ in length")
        deletions: list[frozenset[str] | str]
        if hashed:
            keys = words
            deletions = [_unpack_short(str(d)) for d in sig.get("d", [""] * len(words))]
        else:
            keys = [_word_key(w, f) for w, f in zip(words, flags, strict=True)]
            deletions = [w if _typo_capable(w) else "" for w in words]
        if len(deletions) != len(words):
            raise ValueError("deletions and words differ in length")
        polarity: dict[str, set[int]] = {}
        for axis, pole in sig.get("p", []):
            polarity.setdefault(str(axis), set()).add(int(pole))
        quantities = [
            _Quantity(str(k), str(u), [str(v) for v in vals], str(role))
            for k, u, vals, role in sig.get("q", [])
        ]
        tags: dict[int, set[str]] = {}
        for i, tag in sig.get("s", []):
            tags.setdefault(int(i), set()).add(str(tag))
        return cls(
            hashed=hashed,
            raw=words,
            keys=keys,
            flags=flags,
            deletions=deletions,
            affixed={int(i): str(b) for i, b in sig.get("x", [])},
            polarity=polarity,
            negators=int(sig.get("n", 0)),
            quantities=quantities,
            order=str(sig.get("o", "w" * len(words) if words else "q" * len(quantities))),
            initials=[(str(k), int(s), int(n)) for k, s, n in sig.get("i", [])],
            roles={int(i): str(r) for i, r in sig.get("r", [])},
            tags=tags,
            frame=[f for f in str(sig.get("g", "")).split(".") if f],
        )

    def units(self) -> list[tuple[str, int]]:
        """The order of units as (kind, index into words or quantities)."""
        out: list[tuple[str, int]] = []
        counts = {"w": 0, "q": 0}
        for kind in self.order:
            out.append((kind, counts[kind]))
            counts[kind] += 1
        return out


def _unpack_short(packed: str) -> frozenset[str]:
    if not packed:
        return frozenset()
    raw = base64.b64decode(packed)
    return frozenset(raw[i : i + 4].hex() for i in range(0, len(raw), 4))


def _typo_match(a: _Side, i: int, b: _Side, j: int) -> bool:
    if not (a.deletions[i] and b.deletions[j]):
        return False
    return not a.variants(i).isdisjoint(b.variants(j))


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Alignment:
    a_to_b: dict[int, int] = field(default_factory=dict)
    b_to_a: dict[int, int] = field(default_factory=dict)
    a_quantities_used: set[int] = field(default_factory=set)
    b_quantities_used: set[int] = field(default_factory=set)

    def link(self, i: int, j: int) -> None:
        self.a_to_b[i] = j
        self.b_to_a[j] = i


def _align(a: _Side, b: _Side, index: _Index) -> _Alignment:
    al = _Alignment()
    # 1. Same key (stem, acronym, alias).
    by_key = b.by_key
    for i, key in enumerate(a.keys):
        for j in by_key.get(key, ()):
            if j not in al.b_to_a:
                al.link(i, j)
                break
    # 2. Typos.
    for i in range(len(a.keys)):
        if i in al.a_to_b or not a.deletions[i]:
            continue
        for j in range(len(b.keys)):
            if j not in al.b_to_a and _typo_match(a, i, b, j):
                al.link(i, j)
                break
    # 3. Acronyms against the initials of a run on the other side.
    _align_acronyms(a, b, al, swap=False)
    _align_acronyms(b, a, al, swap=True)
    # 4. Synonyms: a thesaurus group, or the same pole of a synonym axis.
    _align_synonyms(a, b, al, index)
    return al


def _align_synonyms(a: _Side, b: _Side, al: _Alignment, index: _Index) -> None:
    if not (a.tags or b.tags):
        return  # synonyms and poles are tags: nothing to align by
    for i in range(len(a.keys) if b.tags else 0):
        if i in al.a_to_b:
            continue
        tags_a = _synonym_tags(a.tags.get(i, ()), index)
        if not tags_a:
            continue
        for j in range(len(b.keys)):
            if j not in al.b_to_a and not tags_a.isdisjoint(b.tags.get(j, ())):
                al.link(i, j)
                break
    # A polar word matches a polar expression without a word of its own on the other side
    # ("disable" / "turn off": the particle carries the pole).
    for side, other, side_map in ((a, b, al.a_to_b), (b, a, al.b_to_a)):
        for i in range(len(side.keys)):
            if i in side_map:
                continue
            poles = [t.split(":") for t in side.tags.get(i, ()) if t.startswith("ax:")]
            if poles and all(
                axis in index.synonym_axes and int(pole) in other.polarity.get(axis, ())
                for _, axis, pole in poles
            ):
                side_map[i] = -1


def _synonym_tags(tags: Iterable[str], index: _Index) -> set[str]:
    return {t for t in tags if t.startswith("syn:") or t.split(":")[1] in index.synonym_axes}


def _align_acronyms(a: _Side, b: _Side, al: _Alignment, *, swap: bool) -> None:
    """Match acronyms of ``a`` with runs of ``b`` whose initials spell them."""
    if not b.initials or "a" not in a.flags:
        return
    a_map = al.b_to_a if swap else al.a_to_b
    b_map = al.a_to_b if swap else al.b_to_a
    b_units = b.unit_order
    for i, flag in enumerate(a.flags):
        if flag != "a" or i in a_map:
            continue
        for key, start, length in b.initials:
            if key != a.keys[i]:
                continue
            run = b_units[start : start + length]
            if any(kind == "w" and idx in b_map for kind, idx in run):
                continue
            for kind, idx in run:
                if kind == "w":
                    if swap:
                        al.link(idx, i)
                    else:
                        al.link(i, idx)
                elif swap:
                    al.a_quantities_used.add(idx)
                else:
                    al.b_quantities_used.add(idx)
            # The acronym itself counts as matched even though one word spells many.
            a_map.setdefault(i, -1)
            break


def _quantities_compatible(qa: _Quantity, qb: _Quantity) -> bool:
    if qa.kind == qb.kind and qa.unit == qb.unit:
        if qa.kind == "c":
            return True
        return not set(qa.values).isdisjoint(qb.values)
    numeric = {"m", "u", "n"}
    if {qa.kind, qb.kind} <= numeric and "n" in (qa.kind, qb.kind):
        return not set(qa.values).isdisjoint(qb.values)
    return False


def _match_quantities(
    a: _Side, b: _Side, al: _Alignment
) -> tuple[list[_Quantity], list[_Quantity], dict[int, int]]:
    """Pair up quantities; return (unmatched in a, unmatched in b, pairs a->b)."""
    pairs: dict[int, int] = {}
    used_b: set[int] = set(al.b_quantities_used)
    for exact in (True, False):
        for i, qa in enumerate(a.quantities):
            if i in pairs or i in al.a_quantities_used or qa.kind == "r":
                continue
            for j, qb in enumerate(b.quantities):
                if j in used_b or qb.kind == "r":
                    continue
                if (qa.kind == qb.kind) == exact and _quantities_compatible(qa, qb):
                    pairs[i] = j
                    used_b.add(j)
                    break
    missing_a = [
        q
        for i, q in enumerate(a.quantities)
        if q.kind != "r" and i not in pairs and i not in al.a_quantities_used
    ]
    missing_b = [q for j, q in enumerate(b.quantities) if q.kind != "r" and j not in used_b]
    return missing_a, missing_b, pairs


def _overlap(a: _Side, b: _Side, al: _Alignment) -> float:
    """Share of the two prompts' wording, frame included, that the other side repeats.

    Words count when aligned; function words (the frame) count as a multiset. A minimal
    contrast ("Does the hotel have a pool/gym?") keeps the frame and nearly every word;
    a reworded paraphrase changes both.
    """
    frame_b = b.frame_counts
    common = sum(min(n, frame_b[w]) for w, n in a.frame_counts.items())
    total = len(a.keys) + len(b.keys) + len(a.frame) + len(b.frame)
    if total == 0:
        return 1.0
    return min(1.0, 2 * (len(al.a_to_b) + common) / total)


_SAME_CONTENT = "same content"
#: Tag of a generic head noun ("city" in "the capital city"): see _excuse_generic.
_GENERIC_TAG = "gen:n"

#: Parsed signatures a verifier keeps: up to 256, of at most 48 content words each
#: (~5 kB for a one-line question, ~40 kB at 48 words: ~10 MB in all at worst). Longer
#: prompts are parsed for each comparison.
_PARSED_SIDES = 256
_MEMO_MAX_WORDS = 48


#: What parsing a stored signature planted by another writer can raise (fields of the wrong
#: type or shape, inf/NaN where an int belongs, nesting deeper than the recursion limit):
#: such a signature is unreadable, and the candidate is refused.
_UNREADABLE = (TypeError, ValueError, LookupError, ArithmeticError, RecursionError)


def _excuse_generic(a: _Side, b: _Side, al: _Alignment) -> None:
    """Count a generic head noun one side adds next to a shared word as matched.

    "the capital city of France" / "the capital of France": "city" names the kind of
    thing "capital" already is. Only when the other side has no unmatched generic noun
    of its own ("live in the city" / "live in the country" differ).
    """

    def unmatched_generic(side: _Side, side_map: dict[int, int]) -> list[int]:
        return [
            i
            for i, tags in side.tags.items()
            if _GENERIC_TAG in tags and i not in side_map and side.flags[i] == "."
        ]

    found_a = unmatched_generic(a, al.a_to_b)
    found_b = unmatched_generic(b, al.b_to_a)
    if found_a and found_b:
        return
    for found, side_map in ((found_a, al.a_to_b), (found_b, al.b_to_a)):
        for i in found:
            if (i - 1 in side_map and side_map[i - 1] >= 0) or (
                i + 1 in side_map and side_map[i + 1] >= 0
            ):
                side_map[i] = -1


def _memo_key(signature: Mapping[str, Any]) -> bytes | None:
    """The JSON text of ``signature`` (key order kept), or ``None`` if it has none."""
    dumps = fast_dumps()
    try:
        if dumps is not None:
            return dumps(signature)
        return json.dumps(signature, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError):
        return None


@dataclass(slots=True)
class _Decision:
    accepted: bool
    reason: str
    # Only for decisions on wording (no hard difference found): see WORDING_STATS.
    stats: tuple[float, ...] | None = None


# ---------------------------------------------------------------------------------------
# The verifier
# ---------------------------------------------------------------------------------------


class RulesVerifier:
    """Offline rules: quantities, polarity, entities/roles and details must agree.

    Cheap enough to run on every candidate (a signature takes well under a millisecond
    once the stemmer's cache is warm; a verification compares two small dicts), with
    no model and no I/O. See the module docstring for what is compared and why.

    Thread safety: the configuration is fixed at construction; besides it an instance
    keeps a memo of parsed signatures (a locked LRU; a parsed signature only ever gains
    typo variants computed from itself), so :meth:`signature` and :meth:`verify` may run
    concurrently from any thread or loop. Module-wide, each thread stems with its own
    Snowball stemmer (which is not thread-safe) and the stem cache is shared.
    ``verify`` does no blocking work, so it runs inline on the event loop.
    """

    def __init__(
        self,
        *,
        name: str = "rules",
        store_text: bool = True,
        hash_key: bytes | str = b"",
        reworded_max_distance: float | None = 0.2,
        min_overlap: float = 0.6,
        short_prompt_words: int = 8,
        long_tolerance: float = 0.3,
        details_min_distance: float = 0.05,
        checks: Iterable[str] = CHECKS,
        max_chars: int | None = DEFAULT_MAX_CHARS,
    ) -> None:
        """Configure the rules; loads nothing.

        Args:
            name: Verifier name, reported in verdicts and used by composites.
            store_text: Keep words of the prompt readable in signatures. ``False``
                stores keyed digests instead (no prompt text in the signature; synonyms
                from the lexicon are then not used for alignment).
            hash_key: Secret key of the digests (``store_text=False``); up to 64 bytes.
                Keep it stable: signatures made with another key never match.
            reworded_max_distance: Largest cosine distance at which a pair whose
                content words mostly differ (overlap below ``min_overlap``) is
                accepted; ``None`` accepts such pairs at any distance the cache allows.
            min_overlap: Overlap of wording (aligned words and shared function words,
                Dice) from which a pair counts as a minimal contrast, where unmatched
                content words are differences.
            short_prompt_words: Up to this many content words on the shorter side, a
                single unmatched content word rejects a minimal contrast.
            long_tolerance: Beyond that, the share of unmatched content words from which
                a minimal contrast is rejected.
            details_min_distance: Below this cosine distance the embedding vouches for
                word choice: the details check is skipped (quantities, polarity,
                entities and roles are still checked).
            checks: Which checks to run (a subset of ``quantities``, ``polarity``,
                ``entities``, ``roles``, ``details``).
            max_chars: Longest text analysed (default 2,000 characters). A longer
                prompt gets a marker signature and is only ever served by an exact
                repeat: embedding models read a bounded window (all-MiniLM-L6-v2: 256
                word pieces, about 1,000 characters), so two long prompts can embed
                alike while differing in what decides the answer, and a signature grows
                with the text (about 5 bytes per character). ``None``: no limit.

        Raises:
            ConfigurationError: a parameter is out of range.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"name must be a non-empty string; got {name!r}")
        key = hash_key.encode() if isinstance(hash_key, str) else hash_key
        if not isinstance(key, bytes) or len(key) > 64:
            raise ConfigurationError("hash_key must be bytes or str of at most 64 bytes")
        if reworded_max_distance is not None and not 0 <= reworded_max_distance <= 2:
            raise ConfigurationError(
                f"reworded_max_distance must be in [0, 2] or None; got {reworded_max_distance!r}"
            )
        if not 0 <= min_overlap <= 1:
            raise ConfigurationError(f"min_overlap must be in [0, 1]; got {min_overlap!r}")
        if max_chars is not None and (
            not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1
        ):
            raise ConfigurationError(
                f"max_chars must be a positive integer or None; got {max_chars!r}"
            )
        selected = frozenset(checks)
        unknown = selected - CHECKS
        if unknown:
            raise ConfigurationError(
                f"unknown checks {sorted(unknown)}; choose from {sorted(CHECKS)}"
            )
        self.name = name
        self.store_text = bool(store_text)
        self.reworded_max_distance = reworded_max_distance
        self.min_overlap = float(min_overlap)
        self.short_prompt_words = int(short_prompt_words)
        self.long_tolerance = float(long_tolerance)
        self.details_min_distance = float(details_min_distance)
        self.checks = selected
        self.max_chars = max_chars
        self._keys = _Keys(not self.store_text, key)
        self._sides: LRU[_Side] = LRU(_PARSED_SIDES)

    def __repr__(self) -> str:
        return (
            f"RulesVerifier(name={self.name!r}, store_text={self.store_text}, "
            f"reworded_max_distance={self.reworded_max_distance}, "
            f"min_overlap={self.min_overlap}, max_chars={self.max_chars})"
        )

    def signature(self, text: str) -> dict[str, Any]:
        """Return the features of ``text`` as compact JSON data (schema: module doc).

        Raises:
            MissingDependencyError: snowballstemmer is not installed (a broken install).
        """
        if self.max_chars is not None and len(text) > self.max_chars:
            return {"v": RULES_VERSION, "L": len(text)}
        return _signature(text, self._keys)

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """Accept ``candidate`` if no check finds a difference that changes the answer.

        Entries without a signature of this rule version are rejected (their features
        are unknown; the cache then writes a fresh entry).
        """
        return self.decide(text, signature, candidate)

    def decide(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """The synchronous body of :meth:`verify` (used by evaluation loops)."""
        return self.assess(text, signature, candidate)[0]

    def assess(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> tuple[Verdict, tuple[float, ...] | None]:
        """:meth:`decide`, with measurements of the wording when that decided.

        Returns:
            The verdict, and ``None`` when a hard check (quantities, polarity, entities,
            roles, an unusable signature) or an identical content decided; otherwise
            the numbers named by :data:`WORDING_STATS`, which a learned verifier may use
            to decide instead of the word-count rules.
        """
        stored = candidate.signature
        if stored is None or stored.get("v") != RULES_VERSION:
            return Verdict(False, self.name, "entry has no rules signature of this version"), None
        if "L" in stored or (self.max_chars is not None and len(text) > self.max_chars):
            return Verdict(
                False, self.name, f"prompt too long to verify (max_chars={self.max_chars})"
            ), None
        if stored.get("h") and stored.get("k") != self._keys.fingerprint:
            return Verdict(False, self.name, "entry was signed with another hash key"), None
        new = signature
        if (
            new is None
            or new.get("v") != RULES_VERSION
            or bool(new.get("h")) != bool(stored.get("h"))
        ):
            keys = self._keys
            if bool(stored.get("h")) != keys.hashed:
                keys = _Keys(bool(stored.get("h")), keys.key)
            new = _signature(text, keys)
        try:
            old_key, old_side = self._parsed(stored)
            new_key, new_side = self._parsed(new)
        except _UNREADABLE as exc:
            reason = f"unreadable signature ({type(exc).__name__})"
            return Verdict(False, self.name, reason), None
        if old_key is not None and old_key == new_key:
            # Identical features (a repeat up to case, punctuation or spacing): the checks
            # would find what they find when a side meets itself, at any distance.
            if old_side.same_as_itself is None:
                itself = self._compare(old_side, old_side, 0.0)
                old_side.same_as_itself = itself.accepted and itself.reason == _SAME_CONTENT
            if old_side.same_as_itself:
                return Verdict(True, self.name, _SAME_CONTENT), None
        decision = self._compare(old_side, new_side, candidate.distance)
        return Verdict(decision.accepted, self.name, decision.reason), decision.stats

    def _parsed(self, signature: Mapping[str, Any]) -> tuple[bytes | None, _Side]:
        """``signature`` parsed, with its memo key (``None``: not memoisable).

        Parsed sides are memoised by their JSON text: the entries a workload hits and the
        prompts it repeats are few, and parsing (typo variants, lookup tables) costs more
        than comparing.
        """
        key = _memo_key(signature)
        if key is None:
            return None, _Side.parse(signature)
        side = self._sides.get(key)
        if side is None:
            side = _Side.parse(signature)
            if len(side.keys) <= _MEMO_MAX_WORDS:
                self._sides.put(key, side)
        return key, side

    # -- the checks -------------------------------------------------------------------

    def _compare(self, a: _Side, b: _Side, distance: float) -> _Decision:
        index = _index()
        al = _align(a, b, index)
        show = not (a.hashed or b.hashed)

        # Words linked later (polarity) do not change which quantities pair up.
        missing_a, missing_b, quantity_pairs = _match_quantities(a, b, al)
        if "quantities" in self.checks:
            if missing_a or missing_b:
                left = ", ".join(q.show() for q in missing_a) if show else "?"
                right = ", ".join(q.show() for q in missing_b) if show else "?"
                return _Decision(False, f"quantities differ: {left or '-'} vs {right or '-'}")
            if a.rates and b.rates and a.rates != b.rates:
                return _Decision(False, "rates differ")

        if "polarity" in self.checks:
            decision = self._polarity(a, b, al, show)
            if decision is not None:
                return decision

        if "entities" in self.checks:
            for side, other_map, label in ((a, al.a_to_b, "cached"), (b, al.b_to_a, "new")):
                for i, flag in enumerate(side.flags):
                    if flag in {"e", "a"} and i not in other_map:
                        what = side.raw[i] if show else "a name"
                        return _Decision(False, f"entity only in the {label} prompt: {what}")

        if "roles" in self.checks:
            decision = self._roles(a, b, al, quantity_pairs, show)
            if decision is not None:
                return decision

        content_a, content_b = a.content, b.content
        _excuse_generic(a, b, al)
        # Overlap over every stored word, light ones too: it measures how much of the
        # wording the two prompts share (a minimal contrast keeps the frame).
        overlap = _overlap(a, b, al)
        unmatched_a = [i for i in content_a if i not in al.a_to_b]
        unmatched_b = [j for j in content_b if j not in al.b_to_a]
        if not unmatched_a and not unmatched_b:
            return _Decision(True, _SAME_CONTENT)
        stats = (
            overlap,
            float(len(unmatched_a)),
            float(len(unmatched_b)),
            float(len(content_a)),
            float(len(content_b)),
            float(len(a.keys) + len(a.frame)),
            float(len(b.keys) + len(b.frame)),
            float(overlap >= self.min_overlap),
        )
        decision = self._wording(a, b, overlap, unmatched_a, unmatched_b, distance, show)
        decision.stats = stats
        return decision

    def _wording(
        self,
        a: _Side,
        b: _Side,
        overlap: float,
        unmatched_a: list[int],
        unmatched_b: list[int],
        distance: float,
        show: bool,
    ) -> _Decision:
        """Decide a pair with no hard difference by how much of the wording aligns."""
        content_a, content_b = a.content, b.content
        if overlap >= self.min_overlap:
            unexplained = (len(unmatched_a) + len(unmatched_b)) / (len(content_a) + len(content_b))
            short = min(len(content_a), len(content_b)) <= self.short_prompt_words
            # The two tolerances below (a close embedding, a long prompt) excuse word
            # choice only: negations (implicit ones too: "avoid", "fail to"), antonym
            # flips and quantities were checked above at every distance and length.
            checked = "details" in self.checks and distance >= self.details_min_distance
            if checked and (short or unexplained >= self.long_tolerance):
                left = ", ".join(a.raw[i] for i in unmatched_a) if show else "?"
                right = ", ".join(b.raw[j] for j in unmatched_b) if show else "?"
                return _Decision(False, f"details differ: {left or '-'} vs {right or '-'}")
            return _Decision(True, "minimal difference (details not checked)")
        limit = self.reworded_max_distance
        if limit is not None and distance > limit:
            return _Decision(
                False,
                f"reworded (overlap {overlap:.2f}) and distance {distance:.3f} > {limit:g}",
            )
        return _Decision(True, f"reworded (overlap {overlap:.2f}) within distance")

    def _polarity(self, a: _Side, b: _Side, al: _Alignment, show: bool) -> _Decision | None:
        if not (a.polarity or b.polarity or a.affixed or b.affixed or a.negators or b.negators):
            return None  # nothing to flip, nothing to link
        flips: list[str] = []
        for axis in sorted(a.polarity.keys() & b.polarity.keys()):
            if a.polarity[axis] != b.polarity[axis]:
                flips.append(axis)
        # Negative affixes whose base appears, unaffixed, on the other side.
        for side, other, side_map in ((a, b, al.a_to_b), (b, a, al.b_to_a)):
            for i, base in side.affixed.items():
                if i in side_map or base in other.bases:
                    continue
                j = other.last_index.get(base)
                if j is not None:
                    flips.append(side.raw[i] if show else "affix")
                    if side is a:
                        al.link(i, j)
                    else:
                        al.link(j, i)
        negation = a.negators - b.negators
        if negation and not flips:
            negation = self._negative_poles_for_negators(a, b, al, negation)
        if (not flips and negation == 0) or (len(flips) == 1 and abs(negation) == 1):
            self._link_axis_words(a, b, al, flips)
            return None
        if negation and not flips:
            return _Decision(False, f"negation differs ({a.negators} vs {b.negators})")
        what = ", ".join(flips) if show else f"{len(flips)} axes"
        return _Decision(False, f"polarity differs: {what}")

    @staticmethod
    def _negative_poles_for_negators(a: _Side, b: _Side, al: _Alignment, negation: int) -> int:
        """Let a negative-pole word stand for a negation the other side spells out.

        "How do I decline an invite?" / "How do I say no to an invite?", "if I miss a
        dose" / "if I forgot to take a dose": the word's axis is absent from the side with
        the negator, so no flip was counted. Each such word, on the side with fewer
        negators, cancels one negator and counts as matched. Returns what is left of
        ``a.negators - b.negators``.
        """
        side, other, side_map = (b, a, al.b_to_a) if negation > 0 else (a, b, al.a_to_b)
        left = abs(negation)
        for i in range(len(side.keys)):
            if not left:
                break
            if i in side_map:
                continue
            poles = [t.split(":") for t in side.tags.get(i, ()) if t.startswith("ax:")]
            if poles and all(p == "-1" and axis not in other.polarity for _, axis, p in poles):
                side_map[i] = -1
                left -= 1
        return left if negation > 0 else -left

    @staticmethod
    def _link_axis_words(a: _Side, b: _Side, al: _Alignment, flips: list[str]) -> None:
        """Words on a flipped axis explained by a negation count as aligned."""
        for axis in flips:
            prefix = f"ax:{axis}:"
            left = [
                i
                for i in range(len(a.keys))
                if i not in al.a_to_b and any(t.startswith(prefix) for t in a.tags.get(i, ()))
            ]
            right = [
                j
                for j in range(len(b.keys))
                if j not in al.b_to_a and any(t.startswith(prefix) for t in b.tags.get(j, ()))
            ]
            for i, j in zip(left, right, strict=False):
                al.link(i, j)

    def _roles(
        self, a: _Side, b: _Side, al: _Alignment, qpairs: dict[int, int], show: bool
    ) -> _Decision | None:
        if not (a.has_roles and b.has_roles):
            return None  # a role differs, or two swap, only where both sides have roles
        pairs: list[tuple[str, str, str]] = []  # (label, role in a, role in b)
        # A word used twice may play two roles; compare only words used once per side.
        once_a, once_b = a.once, b.once
        for i, j in al.a_to_b.items():
            if j < 0 or a.keys[i] not in once_a or b.keys[j] not in once_b:
                continue
            pairs.append((a.raw[i], a.roles.get(i, ""), b.roles.get(j, "")))
        for i, j in qpairs.items():
            pairs.append((a.quantities[i].show(), a.quantities[i].role, b.quantities[j].role))
        for label, ra, rb in pairs:
            if ra and rb and ra != rb:
                what = f"{label} ({ra} vs {rb})" if show else f"{ra} vs {rb}"
                return _Decision(False, f"roles differ: {what}")
        for x in range(len(pairs)):
            for y in range(x + 1, len(pairs)):
                lx, ax, bx = pairs[x]
                ly, ay, by = pairs[y]
                if ax != ay and ax == by and ay == bx:
                    what = f"{lx} and {ly}" if show else "two words"
                    return _Decision(False, f"roles swapped: {what}")
        return None
