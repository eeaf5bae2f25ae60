"""Raw text <-> PTB-style words: how the word tokenizer splits text (``WordSplitter``) and joins words back
(``detokenize``).

Splitting follows the Penn Treebank: punctuation and clitics come off words (``Don't stop, it's 5 p.m.!`` ->
``Do n't stop , it 's 5 p.m. !``; ``dogs'`` -> ``dogs '``; ``can't`` -> ``ca n't``) while punctuation inside a
token stays (``u.s.``, ``third-quarter``, ``1,000``, ``3.5``, ``o'brien``, ``at&t``, ``mgm\\/ua``), and so do
periods of abbreviations (``mr.``, ``corp.``, ``calif.``, ``u.s.``, ``a.m.``, initials such as ``j.``), specials in
angle brackets (``<unk>``), URLs and e-mail addresses. A run of symbols (an emoji with its modifiers and joiners,
``$$``) is one word. Text that is already tokenized this way, PTB's, comes out unchanged: every line of PTB's
train, valid and test files splits into exactly ``line.split()`` (tests/test_tokenization.py checks it).

The rules are one regular expression run by ``tokenizers``' ``Split`` pre-tokenizer: ``tokenizers`` has no
pre-tokenizer that splits punctuation off a word but keeps it inside one (its ``Punctuation`` and ``Bert`` ones
make ``u.s.`` into ``u . s .``). The expression sees one whitespace-separated chunk at a time, so each chunk's split
is cached; only the last chunk of a text reads differently (``no.``, ``ill.``, ``I.`` keep their period as an
abbreviation when more text follows, and end the sentence otherwise).

``detokenize`` is the inverse for English: closing punctuation and clitics attach to the word before, opening
brackets and currency signs to the word after, straight quotes alternate between opening and closing; every other
pair of words is separated by one space.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Optional, Sequence

APOSTROPHE = "['’]"
CLITIC_SUFFIX = "(?i:s|re|ve|ll|m|d)"  # 's 're 've 'll 'm 'd (n't is matched on its own)
_CLITIC_BODY = rf"(?i:n{APOSTROPHE}t|{APOSTROPHE}{CLITIC_SUFFIX})"
CLITIC = _CLITIC_BODY + r"(?!\w)"

# Abbreviations whose period stays on the word (PTB's and other common English ones), matched case-insensitively.
ABBREVIATIONS = (
    "mr mrs ms messrs dr prof rev sr jr st gov sen sens rep reps adm gen col capt lt sgt "  # titles
    "corp inc co cos ltd bros cie plc llc "  # companies
    "jan feb aug sep sept oct nov dec "  # months that are not words
    "ala ariz ark calif colo conn fla ga ind kan ky md mich minn neb nev okla pa tenn tex va vt wis wyo "  # states
    "vs etc approx dept"
).split()
# Abbreviations that are also words: their period is a full stop at the end of a text (``She said no.``); so is
# the period of an initial I (``So did I.``).
WORD_ABBREVIATIONS = "no ill mass wash ore miss mar mo la del".split()

# A word character that does not start the clitic n't.
_LETTER = rf"(?:(?!(?i:n{APOSTROPHE}t)(?!\w))\w)"
# Punctuation that joins two word characters inside a word (an apostrophe only if a clitic does not follow it,
# a comma or colon only between digits: 1,000 and 10:30); a period also before a hyphen (calif.-based).
_JOINER = rf"(?:(?!{APOSTROPHE}{CLITIC_SUFFIX}(?!\w)){APOSTROPHE}|[.&/@-]|\\/|(?<=\d)[,:])(?=\w)|\.(?=-\w)"
_ABBREVIATION_END = r"\.(?!-?\w)"  # the period ends the word (u.s.-soviet is one word, read further on)


def _pattern(last_chunk: bool) -> str:
    """The word pattern; ``last_chunk``: the chunk ends the text, so a period after a word abbreviation ends it."""
    initial = r"(?![iI]\.)\p{L}" if last_chunk else r"\p{L}"
    listed = ABBREVIATIONS + ([] if last_chunk else WORD_ABBREVIATIONS)
    alternatives = [
        r"<\w+>",  # specials: <unk>
        r"\w+://\S*[\w/]",  # a URL, less the punctuation after it
        r"(?:\\[^\s\w])+",  # PTB escapes * and / with a backslash: \* and \*\* are words
        r"(?:\w+[-&])*(?:\p{L}{1,4}\.){2,}(?!-?\w)",  # dotted abbreviations: u.s. a.m. non-u.s. ph.d.
        initial + _ABBREVIATION_END,  # initials: j. (not a final I.)
        r"(?i:" + "|".join(listed) + ")" + _ABBREVIATION_END,
        CLITIC,
        # a word: letters, digits and marks with joiners inside; '80s and .5 keep their first character; c$ us$
        rf"(?:[.'’](?=\d))?{_LETTER}(?:{_LETTER}|{_JOINER})*(?:\$(?!\w))?",
        r"''|\.{2,}|[!?]+|-{2,}|\p{P}",  # punctuation: ... !? -- and single marks
        r"(?:[^\s\w\p{P}]\p{M}*)+",  # a run of symbols: emoji with their modifiers and joiners, $$, +=
        r"\S",
    ]
    return "|".join(alternatives)


# Closing punctuation and clitics: which words ``detokenize`` attaches to the word before, and which, when the
# training text writes them attached, tell ``WordSplitter`` that the text is raw rather than tokenized.
_CLOSING = re.compile(rf"(?:[.,;:!?%)\]}}»”’…。，、！？：；）」』】]+|''|{_CLITIC_BODY})\Z")
_OPENING = frozenset("([{«“‘¿¡$£€¥") | {"``"}


def is_closing(word: str) -> bool:
    """True for closing punctuation (``.``, ``)``, ``...``) and clitics (``n't``, ``'s``): they follow a word."""
    return _CLOSING.match(word) is not None


class WordSplitter:
    """Splits text into PTB-style words (see the module docstring); the split of each chunk is cached."""

    CACHE_LIMIT = 1 << 20  # chunks; the cache starts over beyond it

    def __init__(self) -> None:
        from tokenizers import Regex, pre_tokenizers

        self._split = [pre_tokenizers.Split(Regex(_pattern(last)), behavior="removed", invert=True).pre_tokenize_str
                       for last in (False, True)]
        # chunk -> (its words, closing words attached to the word before, closing words standing alone)
        self._cache: list[dict[str, tuple[list[str], int, int]]] = [{}, {}]

    def _split_chunk(self, chunk: str, last: bool) -> tuple[list[str], int, int]:
        cache = self._cache[last]
        if len(cache) >= self.CACHE_LIMIT:
            cache.clear()
        words = [w for w, _ in self._split[last](chunk)]
        closing = [is_closing(w) for w in words]
        entry = cache[chunk] = (words, sum(closing[1:]), int(closing[0]))
        return entry

    def __call__(self, text: str, spacing: Optional[Counter] = None) -> list[str]:
        """The words of ``text``. ``spacing``, if given, counts closing punctuation and clitics written attached to
        the word before (``"attached"``) or apart from it (``"apart"``)."""
        chunks = text.split()
        if not chunks:
            return []
        get, split = self._cache[0].get, self._split_chunk
        entries = [get(chunk) or split(chunk, False) for chunk in chunks[:-1]]
        entries.append(self._cache[1].get(chunks[-1]) or split(chunks[-1], True))
        if spacing is not None:
            spacing["attached"] += sum(e[1] for e in entries)
            spacing["apart"] += sum(e[2] for e in entries)
        return [w for e in entries for w in e[0]]


@functools.lru_cache(maxsize=None)
def word_splitter() -> WordSplitter:
    """The shared splitter (its cache serves every word tokenizer)."""
    return WordSplitter()


def split_words(text: str) -> list[str]:
    """PTB-style words of ``text``: ``split_words("Don't go.") == ["Do", "n't", "go", "."]``."""
    return word_splitter()(text)


def detokenize(words: Sequence[str]) -> str:
    """English text of PTB-style words: ``detokenize(["Do", "n't", "go", "."]) == "Don't go."``."""
    parts: list[str] = []
    glue = True  # no space before the next word
    open_quotes: set[str] = set()
    for i, w in enumerate(words):
        if w in ('"', "'"):
            # a straight quote closes an open one; a lone ' after a plural is a possessive (the dogs' bowl)
            closing = w in open_quotes or (w == "'" and i > 0 and words[i - 1][-1:] in ("s", "S"))
            if closing:
                open_quotes.discard(w)
            else:
                open_quotes.add(w)
            opening = not closing
        else:
            closing, opening = is_closing(w), w in _OPENING
        if closing:
            parts.append(w)
        else:
            if not glue:
                parts.append(" ")
            parts.append(w)
        glue = opening
    return "".join(parts)


NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,:/]\d+)*|\.\d+)\Z")
NUMBER_TOKEN = "N"


def ptb_numbers(words: list[str]) -> list[str]:
    """PTB's number policy: every word that is a number (``42``, ``1,000``, ``3.5``, ``1/2``) becomes ``N``."""
    return [NUMBER_TOKEN if NUMBER.match(w) else w for w in words]
