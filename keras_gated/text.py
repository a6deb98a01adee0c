"""Tokenizers and vocabularies for the sequence-to-sequence tasks.

Two ways to split a sentence:

* `"word"`: words and punctuation marks, for alphabetic scripts. A word is a
  run of letters or digits, and keeps inner apostrophes and hyphens
  ("don't", "check-in"); every other non-space character is a token of its
  own. `detokenize` glues punctuation back following ordinary typographic
  spacing (no space before `. , ! ? ; : % ) ] }`, none after `( [ { ¿ ¡`).
* `"char"`: one token per character, for Chinese or Japanese, whose words
  are not separated by spaces; a run of spaces becomes the token `"▁"`.

For text written with ordinary spacing both round-trip:
`detokenize(tokenize(s)) == normalize(s)`, where `normalize` collapses
whitespace (and lowercases when `lowercase=True`).

Example:

>>> tokenizer = Tokenizer("word", lowercase=True)
>>> tokenizer.tokenize("Where is the station, please?")
['where', 'is', 'the', 'station', ',', 'please', '?']
>>> tokenizer.detokenize(['where', 'is', 'the', 'station', ',', 'please', '?'])
'where is the station, please?'
"""

import collections
import re
import unicodedata

SPLITS = ("word", "char")
SPACE_TOKEN = "▁"
PAD, UNK, START, END = "", "[UNK]", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, START, END)

_WORD_PATTERN = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:%)]}»…")
_NO_SPACE_AFTER = set("([{«¿¡")


class Tokenizer:
    """Splits sentences into tokens and joins them back.

    Args:
        split: `"word"` (words and punctuation) or `"char"` (characters).
        lowercase: Lowercase the text before splitting.
    """

    def __init__(self, split="word", lowercase=False):
        if split not in SPLITS:
            raise ValueError(
                f"Unknown `split`: {split!r}. Accepted values: 'word' (words "
                "and punctuation, for alphabetic scripts) or 'char' (one token "
                "per character, for Chinese or Japanese)."
            )
        self.split = split
        self.lowercase = bool(lowercase)

    def get_config(self):
        return {"split": self.split, "lowercase": self.lowercase}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def normalize(self, text):
        """NFC, collapsed whitespace, lowercased if asked: what round-trips."""
        text = " ".join(unicodedata.normalize("NFC", text).split())
        return text.lower() if self.lowercase else text

    def tokenize(self, text):
        """The tokens of one sentence (a list of strings)."""
        text = self.normalize(text)
        if self.split == "char":
            return [SPACE_TOKEN if ch == " " else ch for ch in text]
        return _WORD_PATTERN.findall(text)

    def detokenize(self, tokens):
        """Joins tokens into a sentence (the inverse of `tokenize`)."""
        if self.split == "char":
            return "".join(" " if t == SPACE_TOKEN else t for t in tokens).strip()
        text = ""
        previous = None
        for token in tokens:
            if previous is not None and not (
                token in _NO_SPACE_BEFORE or previous in _NO_SPACE_AFTER
            ):
                text += " "
            text += token
            previous = token
        return text


class Vocabulary:
    """Token <-> id mapping with the reserved ids of `keras_gated.seq2seq`.

    Ids 0, 1, 2, 3 are padding (`""`), unknown (`"[UNK]"`), start (`"<s>"`)
    and end of sentence (`"</s>"`); then the tokens, most frequent first.

    Args:
        tokens: Every token, the four special ones first (as `tokens`
            returns it, e.g. from a saved model's metadata).
    """

    # The reserved tokens, first in every vocabulary, and the id of the
    # unknown one; a subclass may reserve others (the language model's
    # `<eos>`, `<unk>`).
    special_tokens = SPECIAL_TOKENS
    unknown_id = 1

    def __init__(self, tokens):
        tokens = list(tokens)
        count = len(self.special_tokens)
        if tuple(tokens[:count]) != self.special_tokens:
            raise ValueError(
                f"A vocabulary must start with the special tokens "
                f"{list(self.special_tokens)}; got {tokens[:count]}."
            )
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(cls, sentences, max_size=None, min_count=1):
        """A vocabulary of the tokens of `sentences` (lists of tokens).

        `max_size` counts the special tokens; rarer tokens become unknown.
        Ties in frequency are broken alphabetically, so the result does not
        depend on the order of the sentences.
        """
        count = len(cls.special_tokens)
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= count
        ):
            raise ValueError(
                f"`max_size` must be an integer above {count} (the {count} special "
                f"tokens count). Received: max_size={max_size!r}"
            )
        counts = collections.Counter(t for s in sentences for t in s)
        for special in cls.special_tokens:
            counts.pop(special, None)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            ranked = ranked[: max_size - count]
        return cls(list(cls.special_tokens) + ranked)

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        """Ids of `tokens`; unknown tokens get `unknown_id`."""
        return [self.index.get(t, self.unknown_id) for t in tokens]

    def decode(self, ids):
        """Tokens of `ids`, stopping at the end token, skipping padding and start."""
        out = []
        for i in ids:
            i = int(i)
            if i == 3:
                break
            if i in (0, 2):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else self.tokens[self.unknown_id])
        return out
