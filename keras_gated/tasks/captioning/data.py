"""Captioning data: vocabulary, image files, and the dataset loaders.

Sources (`--data`):

* `sample`: scenes this project renders itself (`sample.py`).
* a folder or captions file in the Flickr8k/Flickr30k layout: a text file of
  `image_name#n<TAB>caption` lines (Flickr8k.token.txt), or a CSV with
  `image,caption` columns (header row optional); images in the same folder,
  in its `images/` or `Images/` or `Flicker8k_Dataset/` subfolder, or in
  `--images DIR`.
* a COCO-style annotation JSON (`{"images": [{"id", "file_name"}],
  "annotations": [{"image_id", "caption"}]}`), images next to it or in
  `--images DIR`.
* `tfds:NAME` (or a bare tensorflow-datasets name such as `coco_captions`).

Every problem with a file (a missing or unreadable image, a captions line
that names no image or has no caption) raises `DataError` naming the
file and line; with `skip_bad=True` the item is skipped with a warning and
counted in `dataset.skipped`.
"""

import csv
import json
import os
import re
import warnings

import numpy as np

from keras_gated.tasks.common import DataError
from keras_gated.tasks.common import prepared_tfds_builder
from keras_gated.text import Vocabulary as TextVocabulary

PAD, UNK, START, END = 0, 1, 2, 3
SPECIAL_TOKENS = ["<pad>", "<unk>", "<start>", "<end>"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

#: What to use when a tensorflow-datasets set cannot be had (the offline message).
OFFLINE_INSTEAD = "a local Flickr-style folder or COCO JSON (--data PATH) or --data sample"


#: Deprecated name of `keras_gated.tasks.DataError`, which captioning raises
#: now like every task; `except DataError` still catches it.
CaptionDataError = DataError


def tokenize(caption):
    """Lowercased words; punctuation is dropped (as in the usual caption prep)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", caption.lower())


class Vocabulary(TextVocabulary):
    """Words <-> ids with `<pad>`=0, `<unk>`=1, `<start>`=2, `<end>`=3.

    `keras_gated.text.Vocabulary` with the captioning task's reserved tokens
    (the strings its saved models hold) and its caption-level `encode` /
    `decode`: a caption string in, padded ids out, and back.

    Args:
        words: Every word, the four special ones first (a saved model's
            vocabulary), or words alone (the special ones are put first).
    """

    special_tokens = tuple(SPECIAL_TOKENS)
    unknown_id = UNK

    def __init__(self, words):
        words = list(words)
        if tuple(words[: len(self.special_tokens)]) != self.special_tokens:
            words = list(self.special_tokens) + [w for w in words if w not in self.special_tokens]
        super().__init__(words)

    @property
    def words(self):
        """Every word, the special ones first (what a saved model stores)."""
        return self.tokens

    @classmethod
    def fit(cls, captions, max_size=None, min_count=1):
        """Vocabulary of the most frequent words of `captions` (strings).

        `max_size` counts the special tokens; a size that leaves no room for
        words gives the special tokens alone.
        """
        count = len(cls.special_tokens)
        if max_size and int(max_size) <= count:
            return cls(list(cls.special_tokens))
        return cls.build(
            [tokenize(caption) for caption in captions],
            max_size=int(max_size) if max_size else None,
            min_count=min_count,
        )

    def encode(self, caption, max_length):
        """`<start> w1 ... wn <end>` ids of a caption string, cut and padded to `max_length + 2`."""
        ids = [START] + super().encode(tokenize(caption))[:max_length] + [END]
        return ids + [PAD] * (max_length + 2 - len(ids))

    def decode(self, ids):
        """The caption string of `ids` (up to `<end>`, without padding and `<start>`)."""
        return " ".join(super().decode(ids))


class CaptionDataset:
    """Images (file paths or an in-memory array) and their reference captions.

    Attributes:
        sources: list of image paths, or None for in-memory images.
        images: uint8 array `[N, S, S, 3]` once loaded (or given).
        captions: list of N lists of reference strings.
        skipped: list of `(file, reason)` skipped under `skip_bad`.
    """

    def __init__(self, captions, sources=None, images=None, name="data"):
        self.captions = [list(c) for c in captions]
        self.sources = list(sources) if sources is not None else None
        self.images = images
        self.name = name
        self.skipped = []

    def __len__(self):
        return len(self.captions)

    def subset(self, indices):
        part = CaptionDataset(
            [self.captions[i] for i in indices],
            sources=None if self.sources is None else [self.sources[i] for i in indices],
            images=None if self.images is None else self.images[np.asarray(indices, int)],
            name=self.name,
        )
        return part

    def split(self, validation=0.1, test=0.1, seed=0):
        """Train/validation/test by image (all captions of an image together)."""
        order = np.random.RandomState(seed).permutation(len(self))
        n_val = max(1, int(round(len(self) * validation))) if validation else 0
        n_test = max(1, int(round(len(self) * test))) if test else 0
        if len(self) - n_val - n_test < 1:
            raise DataError(
                f"{self.name}: {len(self)} images are too few to split into "
                f"train, validation ({n_val}) and test ({n_test})."
            )
        test_idx = sorted(order[:n_test])
        val_idx = sorted(order[n_test : n_test + n_val])
        train_idx = sorted(order[n_test + n_val :])
        return self.subset(train_idx), self.subset(val_idx), self.subset(test_idx)

    def load_images(self, image_size, skip_bad=False):
        """Reads and resizes every image file; drops unreadable ones if asked."""
        if self.images is not None:
            if self.images.shape[1] != image_size:
                self.images = np.stack([resize(im, image_size) for im in self.images])
            return self
        loaded, keep = read_images(self.sources, image_size, skip_bad, self.skipped)
        if not keep:
            raise DataError(f"{self.name}: no readable image is left.")
        self.captions = [self.captions[i] for i in keep]
        self.sources = [self.sources[i] for i in keep]
        self.images = np.stack(loaded)
        return self


def read_images(paths, image_size, skip_bad=False, skipped=None):
    """Reads image files; returns (images, indices of the paths read).

    An unreadable file raises `DataError` naming it, unless
    `skip_bad`: then it is warned about, appended to `skipped` as
    (path, reason) and left out.
    """
    images, kept = [], []
    for n, path in enumerate(paths):
        try:
            images.append(read_image(path, image_size))
            kept.append(n)
        except DataError as error:
            if not skip_bad:
                raise
            warnings.warn(f"Skipping: {error}", stacklevel=2)
            if skipped is not None:
                skipped.append((path, str(error)))
    return images, kept


def resize(image, image_size):
    from PIL import Image

    return np.asarray(
        Image.fromarray(np.asarray(image, np.uint8)).resize(
            (image_size, image_size), Image.BILINEAR
        ),
        np.uint8,
    )


def read_image(path, image_size):
    """An image file as uint8 RGB `[S, S, 3]`; DataError names the file."""
    from PIL import Image
    from PIL import UnidentifiedImageError

    if not os.path.isfile(path):
        raise DataError(f"Image file not found: {path}")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB").resize(
                (image_size, image_size), Image.BILINEAR
            )
            return np.asarray(image, np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(
            f"Cannot read image file {path}: {error.__class__.__name__}: {error}"
        ) from None


def _image_root(captions_path, images_dir):
    if images_dir:
        return images_dir
    base = os.path.dirname(os.path.abspath(captions_path))
    for sub in ("images", "Images", "Flicker8k_Dataset", "Flickr8k_Dataset",
                "flickr30k_images"):
        if os.path.isdir(os.path.join(base, sub)):
            return os.path.join(base, sub)
    return base


def _find_captions_file(folder):
    names = sorted(os.listdir(folder))
    preferred = [n for n in names if n.lower() in (
        "captions.txt", "captions.csv", "flickr8k.token.txt", "results_20130124.token",
        "results.csv", "captions.tsv")]
    candidates = preferred or [
        n for n in names if n.lower().endswith((".txt", ".csv", ".tsv", ".token"))
    ]
    if not candidates:
        raise DataError(
            f"No captions file in the folder {folder}: expected captions.txt "
            "(lines `image_name#n<TAB>caption`) or captions.csv (image,caption)."
        )
    return os.path.join(folder, candidates[0])


def _bad(message, skip_bad, skipped, where):
    if not skip_bad:
        raise DataError(message)
    warnings.warn(f"Skipping: {message}", stacklevel=3)
    skipped.append((where, message))


def _dataset_by_image(by_image, path, skipped, entry):
    """A CaptionDataset from {image path: captions}, images in sorted order."""
    if not by_image:
        raise DataError(f"{path}: no {entry} names an existing image.")
    sources = sorted(by_image)
    dataset = CaptionDataset([by_image[s] for s in sources], sources=sources, name=path)
    dataset.skipped = skipped
    return dataset


def read_captions_file(path, images_dir=None, skip_bad=False):
    """Flickr token file or CSV -> CaptionDataset of image paths."""
    skipped = []
    root = _image_root(path, images_dir)
    by_image = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: the captions file is not UTF-8 text ({error}).") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"The captions file {path} is empty.")
    is_csv = path.lower().endswith(".csv") or (
        "\t" not in lines[0] and lines[0].count(",") >= 1
    )
    if is_csv:
        rows = list(csv.reader(lines))
        start = 1 if rows and [c.strip().lower() for c in rows[0][:2]] == ["image", "caption"] else 0
        entries = [
            (n + 1, row) for n, row in enumerate(rows) if n >= start and any(row)
        ]
        parsed = []
        for line_no, row in entries:
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                _bad(f"{path}, line {line_no}: expected `image,caption`, got "
                     f"{','.join(row)!r}", skip_bad, skipped, f"{path}:{line_no}")
                continue
            parsed.append((line_no, row[0].strip(), ",".join(row[1:]).strip()))
    else:
        parsed = []
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if "\t" not in line:
                _bad(f"{path}, line {line_no}: expected `image_name#n<TAB>caption`, "
                     f"found no tab in {line[:80]!r}", skip_bad, skipped,
                     f"{path}:{line_no}")
                continue
            name, caption = line.split("\t", 1)
            name = re.sub(r"#\d+$", "", name.strip())
            if not name or not caption.strip():
                _bad(f"{path}, line {line_no}: the line names no image or has no "
                     f"caption: {line[:80]!r}", skip_bad, skipped, f"{path}:{line_no}")
                continue
            parsed.append((line_no, name, caption.strip()))
    missing_reported = set()
    for line_no, name, caption in parsed:
        image_path = os.path.join(root, name)
        if not os.path.isfile(image_path):
            if name not in missing_reported:
                missing_reported.add(name)
                _bad(f"{path}, line {line_no}: names the image {name!r}, but "
                     f"there is no file {image_path}", skip_bad, skipped, image_path)
            continue
        by_image.setdefault(image_path, []).append(caption)
    return _dataset_by_image(by_image, path, skipped, "caption")


def read_coco_json(path, images_dir=None, skip_bad=False):
    """COCO captions annotation JSON -> CaptionDataset of image paths."""
    skipped = []
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error}).") from None
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise DataError(
            f"{path} is not a COCO-style captions file: expected the keys "
            "'images' and 'annotations'."
        )
    root = images_dir or os.path.dirname(os.path.abspath(path))
    files = {}
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            raise DataError(
                f"{path}, images[{n}]: expected an object with 'id' and 'file_name', got {str(entry)[:80]}."
            )
        files[entry["id"]] = os.path.join(root, entry["file_name"])
    by_image = {}
    for n, note in enumerate(data["annotations"]):
        if not isinstance(note, dict):
            raise DataError(f"{path}, annotations[{n}]: expected an object, got {str(note)[:80]}.")
        image_id = note.get("image_id")
        where = f"{path}, annotations[{n}]"
        if image_id not in files:
            _bad(f"{where}: image_id {image_id!r} names no entry of 'images'",
                 skip_bad, skipped, where)
            continue
        if not os.path.isfile(files[image_id]):
            _bad(f"{where}: image_id {image_id!r} names {files[image_id]}, which "
                 "does not exist", skip_bad, skipped, files[image_id])
            files[image_id] = None
            continue
        if files[image_id] is None:
            continue
        by_image.setdefault(files[image_id], []).append(str(note.get("caption", "")).strip())
    return _dataset_by_image(by_image, path, skipped, "annotation")


def read_tfds(name, image_size, limit=None, data_dir=None, split="train"):
    """A tensorflow-datasets captioning set (e.g. `coco_captions`) in memory."""
    import tensorflow_datasets as tfds

    builder = prepared_tfds_builder(name, data_dir, OFFLINE_INSTEAD)
    ds = builder.as_dataset(split=split)
    images, captions = [], []
    for example in tfds.as_numpy(ds.take(limit) if limit else ds):
        image = example.get("image")
        texts = example.get("captions", {}).get("text") if isinstance(
            example.get("captions"), dict) else example.get("captions", example.get("caption"))
        if image is None or texts is None:
            raise DataError(
                f"The tfds set {name!r} has no 'image' and 'captions' features."
            )
        texts = [t.decode() if isinstance(t, bytes) else str(t)
                 for t in np.atleast_1d(texts)]
        images.append(resize(image, image_size))
        captions.append(texts)
    return CaptionDataset(captions, images=np.stack(images), name=f"tfds:{name}")


def load_dataset(data, image_size, images_dir=None, skip_bad=False,
                 sample_size=1200, seed=0, limit=None):
    """Dataset by `--data` value; images are read and resized to `image_size`."""
    from keras_gated.tasks.captioning import sample

    if data == "sample":
        images, captions = sample.make_sample_dataset(sample_size, image_size, seed)
        return CaptionDataset(captions, images=images, name="sample")
    if data.startswith("tfds:") or (
        not os.path.exists(data) and re.fullmatch(r"[a-z0-9_]+(/[a-z0-9_.]+)?(:[0-9.]+)?", data)
    ):
        return read_tfds(data[5:] if data.startswith("tfds:") else data, image_size,
                         limit=limit)
    if not os.path.exists(data):
        raise DataError(
            f"--data {data!r}: no such file or folder. Pass a Flickr-style folder "
            "or captions file, a COCO JSON, a tfds name, or 'sample'."
        )
    if os.path.isdir(data):
        path = _find_captions_file(data)
        dataset = read_captions_file(path, images_dir or None, skip_bad)
    elif data.lower().endswith(".json"):
        dataset = read_coco_json(data, images_dir, skip_bad)
    else:
        dataset = read_captions_file(data, images_dir, skip_bad)
    skipped = dataset.skipped
    if limit:
        dataset = dataset.subset(range(min(limit, len(dataset))))
    dataset.load_images(image_size, skip_bad=skip_bad)
    dataset.skipped = skipped + dataset.skipped
    return dataset


def caption_pairs(dataset, vocabulary, max_length):
    """(image index, token ids) for every reference caption."""
    index, tokens = [], []
    for n, refs in enumerate(dataset.captions):
        for ref in refs:
            index.append(n)
            tokens.append(vocabulary.encode(ref, max_length))
    return np.asarray(index, np.int64), np.asarray(tokens, np.int32)


def caption_pair_names(dataset):
    """`image: caption` for every reference caption, in the order of `caption_pairs`.

    The image is its file name, or `image N` (its index) for images in memory.
    """
    names = []
    for n, refs in enumerate(dataset.captions):
        image = os.path.basename(str(dataset.sources[n])) if dataset.sources is not None else f"image {n}"
        names.extend(f"{image}: {ref}" for ref in refs)
    return names
