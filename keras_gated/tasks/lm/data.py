"""Text for language modelling: reading, tokens, vocabulary, TBPTT batches.

Sources (`load_corpus(data, ...)`):

* `"sample"`: the project's own grammar (`keras_gated.tasks.lm.sample`);
* a folder in the Penn Treebank layout: `ptb.train.txt`, `ptb.valid.txt`,
  `ptb.test.txt` (or `train.txt`, `valid.txt`, `test.txt`); a missing
  validation or test file is carved from the training lines;
* a plain text file, one sentence (or line of text) per line: the seeded
  split `split_lines` makes validation and test splits of its lines;
* a tensorflow-datasets text set by name (e.g. `tiny_shakespeare`, `lm1b`):
  its string feature (`text_feature`), its own splits where it has them.

Tokens: `"word"` splits on whitespace only, so a pre-tokenised corpus such
as PTB keeps its tokens, `<unk>` included; `"char"` makes one token per
character (a space is `▁`). Every line ends with the token `<eos>`.

The stream of a split is its lines' tokens one after the other. For
truncated backpropagation through time, `StreamWindows` cuts it into
`batch_size` equal rows (row r holds the r-th stretch of the stream) and
yields windows of `bptt` steps in order: row r of window k+1 continues row
r of window k, and the targets are the inputs shifted by one token.
"""

import dataclasses
import math
import os
import random

import keras
import numpy as np

from keras_gated.text import Vocabulary as SentenceVocabulary
from keras_gated.tasks.common import DataError
from keras_gated.tasks.common import prepared_tfds_builder
from keras_gated.tasks.lm import sample

EOS, UNK = "<eos>", "<unk>"
#: Ids 0 and 1; then the training tokens, most frequent first.
SPECIAL_TOKENS = (EOS, UNK)
EOS_ID, UNK_ID = 0, 1
SPACE_TOKEN = "▁"
SPLITS = ("word", "char")

#: File names of a corpus folder, per split, in the order they are tried.
FOLDER_FILES = {
    "train": ("ptb.train.txt", "train.txt"),
    "valid": ("ptb.valid.txt", "valid.txt"),
    "test": ("ptb.test.txt", "test.txt"),
}
#: tensorflow-datasets split names that serve as validation and test.
TFDS_VALID_SPLITS = ("validation", "valid", "dev")
TFDS_TEST_SPLITS = ("test",)

#: What to use when a tensorflow-datasets set cannot be had (the offline message).
OFFLINE_INSTEAD = "--data sample, a text file or a PTB folder"


@dataclasses.dataclass
class Corpus:
    """The lines (strings) of the three splits and where they came from."""

    train: list
    valid: list
    test: list
    source: str


# --------------------------------------------------------------------- reading


def read_lines(path):
    """The non-blank lines of a UTF-8 text file, without their line ends.

    Raises:
        DataError: no such file, an empty file, a line that is not UTF-8
            or holds a NUL byte (a binary file); the message names the file
            and the line.
    """
    if os.path.isdir(path):
        raise DataError(f"{path}: a folder; give a text file, or a folder with ptb.train.txt.")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such text file.")
    with open(path, "rb") as handle:
        raw_lines = handle.read().splitlines()
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        if b"\0" in raw:
            raise DataError(f"{path}, line {number}: a NUL byte; this is not a text file.")
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{path}, line {number}: not UTF-8 text ({error.reason}).") from None
        if text.strip():
            lines.append(text.strip())
    if not lines:
        raise DataError(f"{path}: the file is empty; it must hold one sentence or line of text per line.")
    return lines


def find_folder_files(folder):
    """`{"train": path, "valid": path or None, "test": path or None}` of a corpus folder.

    Raises:
        DataError: the folder has no training file (names what it looked for).
    """
    found = {}
    for split, names in FOLDER_FILES.items():
        found[split] = next(
            (os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))), None
        )
    if found["train"] is None:
        raise DataError(
            f"{folder}: a folder without {' or '.join(FOLDER_FILES['train'])}. A corpus folder "
            "holds ptb.train.txt, ptb.valid.txt and ptb.test.txt (the Penn Treebank layout), "
            "or train.txt, valid.txt and test.txt; or give one text file."
        )
    return found


def split_lines(lines, val_fraction=0.1, test_fraction=0.1, seed=0):
    """A seeded split of `lines` into (train, valid, test), each in corpus order."""
    for name, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"{name} must be in [0, 1); got {value}.")
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    test_count = int(round(len(lines) * test_fraction))
    val_count = int(round(len(lines) * val_fraction))
    test_ids = set(order[:test_count])
    val_ids = set(order[test_count:test_count + val_count])
    train = [line for i, line in enumerate(lines) if i not in test_ids and i not in val_ids]
    valid = [line for i, line in enumerate(lines) if i in val_ids]
    test = [line for i, line in enumerate(lines) if i in test_ids]
    return train, valid, test


def _carve(train, valid, test, val_fraction, test_fraction, seed):
    """Fills a missing validation or test split from the training lines."""
    if valid is None or test is None:
        train, carved_valid, carved_test = split_lines(
            train, val_fraction if valid is None else 0.0, test_fraction if test is None else 0.0, seed
        )
        valid = carved_valid if valid is None else valid
        test = carved_test if test is None else test
    return train, valid, test


def read_tfds_lines(name, data_dir=None, text_feature=None, max_lines=None):
    """`{split: lines}` of a tensorflow-datasets text set.

    Each example's text is cut into its lines (a set such as
    `tiny_shakespeare` holds a whole split in one example).

    Raises:
        DataError: unknown name; not prepared and no network (at once); no
            string feature, or `text_feature` is not one of its features.
    """
    import tensorflow_datasets as tfds

    builder = prepared_tfds_builder(name, data_dir, OFFLINE_INSTEAD)
    features = builder.info.features
    if text_feature is None:
        text_feature = next(
            (key for key, feature in features.items() if getattr(feature, "dtype", None) is not None
             and "string" in str(feature.dtype)),
            None,
        )
    if text_feature not in features:
        raise DataError(
            f"{name} has no text feature {text_feature!r}; its features are {list(features)}. "
            "Set --text-feature."
        )
    splits = {}
    for split in builder.info.splits:
        lines = []
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            lines += [line.strip() for line in example[text_feature].decode("utf-8").splitlines() if line.strip()]
            if max_lines and len(lines) >= max_lines:
                lines = lines[:max_lines]
                break
        splits[split] = lines
    return splits


def load_corpus(data="sample", tfds_dir=None, text_feature=None, sample_size=None,
                val_fraction=0.1, test_fraction=0.1, split_seed=0, max_lines=None):
    """The `Corpus` of `--data`: "sample", a PTB-style folder, a text file, or a tfds name."""
    if data == "sample":
        lines = sample.generate(sample_size or sample.SAMPLE_SIZE, seed=split_seed)
        train, valid, test = split_lines(lines, val_fraction, test_fraction, split_seed)
        source = f"sample grammar ({len(lines)} sentences)"
    elif os.path.isdir(data):
        files = find_folder_files(data)
        train = read_lines(files["train"])[:max_lines]
        valid = read_lines(files["valid"])[:max_lines] if files["valid"] else None
        test = read_lines(files["test"])[:max_lines] if files["test"] else None
        train, valid, test = _carve(train, valid, test, val_fraction, test_fraction, split_seed)
        source = os.path.abspath(data)
    elif os.path.exists(data) or os.path.splitext(data)[1] in (".txt", ".tokens", ".raw"):
        lines = read_lines(data)[:max_lines]
        train, valid, test = split_lines(lines, val_fraction, test_fraction, split_seed)
        source = os.path.abspath(data)
    else:
        splits = read_tfds_lines(data, tfds_dir, text_feature, max_lines)
        train = splits.get("train") or []
        valid = next((splits[s] for s in TFDS_VALID_SPLITS if s in splits), None)
        test = next((splits[s] for s in TFDS_TEST_SPLITS if s in splits), None)
        train, valid, test = _carve(train, valid, test, val_fraction, test_fraction, split_seed)
        source = f"tfds:{data}"
    for split, lines in (("training", train), ("validation", valid), ("test", test)):
        if not lines:
            raise DataError(
                f"{data}: the {split} split is empty; add text or change --val-fraction / "
                "--test-fraction."
            )
    return Corpus(train, valid, test, source)


# --------------------------------------------------------------------- tokens


def tokenize(line, split="word"):
    """The tokens of one line: whitespace-separated words, or characters."""
    if split == "word":
        return line.split()
    if split == "char":
        return [SPACE_TOKEN if ch == " " else ch for ch in " ".join(line.split())]
    raise ValueError(f"Unknown split {split!r}; use 'word' or 'char'.")


def detokenize(tokens, split="word"):
    """Text of `tokens`; `<eos>` becomes a line break."""
    lines, current = [], []
    for token in tokens:
        if token == EOS:
            lines.append(current)
            current = []
        else:
            current.append(token)
    lines.append(current)
    if split == "char":
        return "\n".join("".join(" " if t == SPACE_TOKEN else t for t in line) for line in lines)
    return "\n".join(" ".join(line) for line in lines)


class Vocabulary(SentenceVocabulary):
    """Token <-> id: `<eos>` is 0, `<unk>` is 1, then tokens by falling frequency.

    `keras_gated.text.Vocabulary` (the translation task's) with the language
    model's reserved tokens.
    A `<unk>` in the text (as in PTB) is the unknown token itself.
    """

    special_tokens = SPECIAL_TOKENS
    unknown_id = UNK_ID

    def decode(self, ids):
        """Every token of `ids`, `<eos>` included (a stream runs on past it)."""
        return [self.tokens[int(i)] if 0 <= int(i) < len(self.tokens) else UNK for i in ids]


def encode_stream(lines, vocabulary, split="word"):
    """The token ids of `lines`, each line followed by `<eos>`, as one int32 array."""
    ids = []
    for line in lines:
        ids += vocabulary.encode(tokenize(line, split))
        ids.append(EOS_ID)
    return np.asarray(ids, dtype="int32")


# --------------------------------------------------------------------- TBPTT


def stream_rows(stream, batch_size):
    """`(inputs, targets)`, each `(batch_size, n)`: the stream cut into equal rows.

    Row r of the inputs is `stream[r*n : (r+1)*n]` and row r of the targets
    the same stretch one token later; the last `len(stream) - 1 - batch_size*n`
    tokens are dropped.
    """
    stream = np.asarray(stream)
    steps = (len(stream) - 1) // batch_size
    if steps < 1:
        raise DataError(
            f"A split of {len(stream)} tokens cannot fill {batch_size} rows of at least one "
            "step each; lower --batch-size (or --eval-batch-size) or add text."
        )
    inputs = stream[: batch_size * steps].reshape(batch_size, steps)
    targets = stream[1: batch_size * steps + 1].reshape(batch_size, steps)
    return inputs, targets


class StreamWindows(keras.utils.PyDataset):
    """Windows `(inputs, targets)` of `bptt` steps over a stream cut into rows.

    Batch k holds steps `k*bptt .. (k+1)*bptt - 1` of every row, so a
    stateful model that keeps its states between batches reads each row as
    one continuous text. The order is fixed: fit with `shuffle=False`.

    Args:
        stream: Token ids (1-D).
        batch_size: Rows, the stateful model's batch size.
        bptt: Steps per window (gradients are truncated at window edges).
        drop_partial: Leave out a last window shorter than `bptt` (training
            does). Otherwise (evaluation, where every token counts) each
            batch is `(inputs, targets, weights)`: the last window is padded
            to `bptt` steps with weight 0, because Keras expects every batch
            of a `PyDataset` to have the shape of the first.
    """

    def __init__(self, stream, batch_size, bptt, drop_partial=False, **kwargs):
        super().__init__(**kwargs)
        if bptt < 1:
            raise DataError(f"--bptt must be at least 1; got {bptt}.")
        self.inputs, self.targets = stream_rows(stream, batch_size)
        self.batch_size = batch_size
        self.bptt = bptt
        self.drop_partial = drop_partial
        steps = self.inputs.shape[1]
        self.windows = steps // bptt if drop_partial else math.ceil(steps / bptt)
        if self.windows < 1:
            raise DataError(
                f"A split of {len(stream)} tokens in {batch_size} rows has {steps} steps per "
                f"row, less than one window of --bptt {bptt}; lower --bptt or --batch-size."
            )

    @property
    def tokens(self):
        """Number of target tokens the windows cover."""
        return int(min(self.inputs.shape[1], self.windows * self.bptt) * self.batch_size)

    def __len__(self):
        return self.windows

    def __getitem__(self, index):
        if not 0 <= index < self.windows:
            raise IndexError(index)
        window = slice(index * self.bptt, (index + 1) * self.bptt)
        inputs, targets = self.inputs[:, window], self.targets[:, window]
        if self.drop_partial:
            return inputs, targets
        weights = np.ones(targets.shape, dtype="float32")
        missing = self.bptt - inputs.shape[1]
        if missing:
            pad = ((0, 0), (0, missing))
            inputs, targets = np.pad(inputs, pad), np.pad(targets, pad)
            weights = np.pad(weights, pad)
        return inputs, targets, weights
