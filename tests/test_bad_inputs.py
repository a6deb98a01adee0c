"""The table of bad inputs: each kind, tried, with the error it gets or the survival it is promised.

Every case names its kind; `docs/errors.md` lists every kind (a test checks
that the two agree). A case either raises `error` with every fragment of
`says` in its message, or (error=None) survives and passes its `check`.
"""

import contextlib
import dataclasses
import gzip
import io
import json
import os
import typing
import zipfile

import keras
import numpy as np
import pytest

import keras_gated as kg
from keras_gated.tasks.base import DataError
from keras_gated.tasks.base import SavedModelError
from keras_gated.tasks.captioning.data import CaptionDataError
from keras_gated.tuning.guards import NonFiniteLossError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Case:
    kind: str
    run: typing.Callable  # run(tmp_path) -> anything
    error: type = None  # None: the input is survived
    says: tuple = ()
    check: typing.Callable = None  # check(result) for a survival


class CliError(Exception):
    """`keras-gated` returned a non-zero code; the message is its stderr."""


def _file(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return str(path)


# ------------------------------------------------------------ sentiment


def _table(name, content, **options):
    from keras_gated.tasks.sentiment import read_table

    return lambda tmp_path: read_table(_file(tmp_path, name, content), **options)


def _splits(name, content, **options):
    from keras_gated.tasks.sentiment import load_splits

    return lambda tmp_path: load_splits(_file(tmp_path, name, content), **options)


def _gzip(text):
    return gzip.compress(text.encode("utf-8"))


GOOD_ROWS = "text,label\n" + "".join(f"review number {n},{n % 2}\n" for n in range(20))
HUGE_FIELD = "word " * 200_000  # 1 MB, past the csv module's 128 KiB default field limit


def _read_sentiment_folder(tmp_path):
    from keras_gated.tasks.sentiment import read_table

    return read_table(str(tmp_path))


def _empty_after_standardisation(tmp_path):
    from keras_gated.tasks import sentiment

    texts, labels = sentiment.read_table(_file(tmp_path, "p.csv", "text,label\n!!!,0\n...,1\ngood film,1\n"))
    vectorizer = sentiment.make_vectorizer(texts, 100, 8)
    return texts, sentiment.count_empty_texts(texts, vectorizer)


SENTIMENT = [
    Case("sentiment: empty CSV", _table("e.csv", ""), DataError, ("e.csv", "the file is empty")),
    Case("sentiment: whitespace-only CSV", _table("w.csv", "\n \n\t\n"), DataError, ("the file is empty",)),
    Case("sentiment: header line only", _table("h.csv", "text,label\n"), DataError,
         ("no examples after the header line",)),
    Case("sentiment: unclosed quote", _table("q.csv", 'text,label\n"a film,1\nanother,0\n'), DataError,
         ("line 2", "is a quote left open?")),
    Case("sentiment: truncated last row", _table("t.csv", "text,label\ngood,1\nbad,0\nmeh"), DataError,
         ("line 4", "no column 1 for the label", "the line has 1 columns")),
    Case("sentiment: unknown column name", _table("c.csv", GOOD_ROWS, text_column="review"), DataError,
         ("no column named 'review' for the text", "'text', 'label'")),
    Case("sentiment: column index out of range", _table("i.csv", "a,b\nx,1\ny,0\n", label_column=5),
         DataError, ("no column 5 for the label", "--label-column")),
    Case("sentiment: empty label", _table("l.csv", "text,label\ngood,1\nbad,\n"), DataError,
         ("line 3", "the label is empty")),
    Case("sentiment: one class only", _splits("one.csv", "text,label\n" + "fine film,1\n" * 30), DataError,
         ("Need at least two classes", "['1']")),
    Case("sentiment: too few examples to split", _splits("few.csv", "text,label\ngood,1\nbad,0\n"), DataError,
         ("too few examples (2)", "--val-fraction")),
    Case("sentiment: non-UTF-8 bytes", _table("latin.csv", "text,label\ncaf\xe9,1\n".encode("latin-1")),
         DataError, ("latin.csv", "not UTF-8 text")),
    Case("sentiment: binary file named .csv", _table("bin.csv", bytes(range(256)) * 4), DataError,
         ("not UTF-8 text",)),
    Case("sentiment: huge line (1 MB field)", _table("huge.csv", f"text,label\n{HUGE_FIELD},1\nshort,0\n"),
         check=lambda result: len(result[0][0]) == len(HUGE_FIELD.strip()) and result[1] == ["1", "0"]),
    Case("sentiment: byte-order mark", _table("bom.csv", "\ufefftext,label\ngood,1\nbad,0\n"),
         check=lambda result: result == (["good", "bad"], ["1", "0"])),
    Case("sentiment: CRLF line ends", _table("crlf.csv", "text,label\r\ngood,1\r\nbad,0\r\n"),
         check=lambda result: result == (["good", "bad"], ["1", "0"])),
    Case("sentiment: NUL byte in a text", _table("nul.csv", "text,label\ngo\x00od,1\nbad,0\n"),
         check=lambda result: result[0] == ["go\x00od", "bad"]),
    Case("sentiment: text empty after standardisation", _empty_after_standardisation,
         check=lambda result: result == (["!!!", "...", "good film"], 2)),
    Case("sentiment: truncated .csv.gz", _table("t.csv.gz", _gzip(GOOD_ROWS)[:-12]), DataError,
         ("not a complete gzip file", "copy it again")),
    Case("sentiment: .gz that is not gzip", _table("plain.csv.gz", GOOD_ROWS), DataError,
         ("not a complete gzip file",)),
    Case("sentiment: TSV given a CSV (wrong delimiter)", _table("wrong.tsv", "text,label\ngood,1\nbad,0\n"),
         DataError, ("no column 1", "the line has 1 columns", "the delimiter")),
    Case("sentiment: JSONL line not JSON", _table("r.jsonl", '{"text": "a", "label": 1}\n{text: b}\n'),
         DataError, ("line 2", "not a JSON object")),
    Case("sentiment: JSONL line a JSON array", _table("a.jsonl", '["a", 1]\n'), DataError,
         ("line 1", "expected a JSON object per line")),
    Case("sentiment: JSONL missing field", _table("m.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n'),
         DataError, ("line 2", "no field for the label", "the object has 'text'", "--label-column")),
    Case("sentiment: JSONL field given by name missing",
         _table("k.jsonl", '{"text": "a", "label": 1}\n', label_column="stars"), DataError,
         ("line 1", "no field 'stars' for the label", "'text', 'label'")),
    Case("sentiment: JSONL truncated object", _table("tr.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "la'),
         DataError, ("line 2", "not a JSON object")),
    Case("sentiment: JSONL blank lines only", _table("b.jsonl", "\n\n  \n"), DataError, ("the file is empty",)),
    Case("sentiment: JSONL null label", _table("n.jsonl", '{"text": "a", "label": null}\n'), DataError,
         ("line 1", "the label is empty")),
    Case("sentiment: JSONL null text", _table("nt.jsonl", '{"text": null, "label": 1}\n'), DataError,
         ("line 1", "the text is null")),
    Case("sentiment: no such file", lambda tmp_path: _table_missing(tmp_path), DataError, ("no such file",)),
    Case("sentiment: unknown file extension", _table("reviews.xlsx", GOOD_ROWS), DataError,
         ("unknown file type", "--format csv|tsv|jsonl")),
    Case("sentiment: a folder given as the file", _read_sentiment_folder, DataError,
         ("a folder, not a file",)),
]


def _table_missing(tmp_path):
    from keras_gated.tasks.sentiment import read_table

    return read_table(str(tmp_path / "missing.csv"))


# ---------------------------------------------------------- translation


def _pairs(name, content, **options):
    from keras_gated.tasks.translation import read_pairs

    return lambda tmp_path: read_pairs(_file(tmp_path, name, content), **options)


TRANSLATION = [
    Case("translation: line without a tab", _pairs("p.tsv", "hello\tkela\ngood morning kela\n"), DataError,
         ("line 2", "no tab", "source<TAB>target")),
    Case("translation: empty target", _pairs("p.tsv", "hello\tkela\nbye\t \n"), DataError,
         ("line 2", "the target column (1) is empty")),
    Case("translation: empty file", _pairs("p.tsv", "\n\n"), DataError, ("the file is empty",)),
    Case("translation: non-UTF-8 bytes", _pairs("p.tsv", "caf\xe9\tkela\n".encode("latin-1")), DataError,
         ("not UTF-8 text",)),
    Case("translation: same source and target column", _pairs("p.tsv", "a\tb\n", source_column=1, target_column=1),
         DataError, ("both 1", "two different columns")),
    Case("translation: too few columns for the chosen one", _pairs("p.tsv", "a\tb\n", target_column=3), DataError,
         ("2 columns", "need 4")),
    Case("translation: no such file", lambda tmp_path: _missing_pairs(tmp_path), DataError,
         ("no such file of sentence pairs",)),
]


def _missing_pairs(tmp_path):
    from keras_gated.tasks.translation import read_pairs

    return read_pairs(str(tmp_path / "missing.tsv"))


# ------------------------------------------------------ language models


def _lm_lines(name, content):
    from keras_gated.tasks.lm.data import read_lines

    return lambda tmp_path: read_lines(_file(tmp_path, name, content))


def _lm_folder_without_ptb(tmp_path):
    from keras_gated.tasks.lm.data import find_folder_files

    _file(tmp_path, "notes.txt", "a b c\n")
    return find_folder_files(str(tmp_path))


def _lm_too_short(tmp_path):
    from keras_gated.tasks.lm.data import stream_rows

    return stream_rows([1, 2, 3], batch_size=8)


LANGUAGE_MODEL = [
    Case("lm: empty text file", _lm_lines("e.txt", "\n \n"), DataError, ("the file is empty",)),
    Case("lm: binary file (NUL byte)", _lm_lines("b.txt", b"ab\x00cd\n"), DataError, ("line 1", "a NUL byte")),
    Case("lm: non-UTF-8 bytes", _lm_lines("l.txt", "ok\ncaf\xe9\n".encode("latin-1")), DataError,
         ("line 2", "not UTF-8 text")),
    Case("lm: folder without ptb.train.txt", _lm_folder_without_ptb, DataError,
         ("a folder without ptb.train.txt", "Penn Treebank layout")),
    Case("lm: split too short for the batch", _lm_too_short, DataError,
         ("A split of 3 tokens cannot fill 8 rows", "lower --batch-size")),
]


# ----------------------------------------------------------- captioning


def _png_bytes():
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes():
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _image(name, content):
    from keras_gated.tasks.captioning.data import read_image

    return lambda tmp_path: read_image(_file(tmp_path, name, content), 16)


def _captions(content, images=("a.png",), name="captions.txt"):
    from keras_gated.tasks.captioning.data import load_dataset

    def run(tmp_path):
        for image in images:
            _file(tmp_path, image, _png_bytes())
        return load_dataset(_file(tmp_path, name, content), 16)

    return run


def _coco(content):
    from keras_gated.tasks.captioning.data import read_coco_json

    return lambda tmp_path: read_coco_json(_file(tmp_path, "captions.json", content))


def _skip_bad_image(tmp_path):
    import warnings

    from keras_gated.tasks.captioning.data import load_dataset

    _file(tmp_path, "a.png", _png_bytes())
    _file(tmp_path, "b.png", b"not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset(_file(tmp_path, "captions.txt", "a.png#0\ta cat\nb.png#0\ta dog\n"), 16,
                               skip_bad=True)
    return dataset, dataset.skipped


def _folder_without_captions(tmp_path):
    from keras_gated.tasks.captioning.data import load_dataset

    _file(tmp_path, "a.png", _png_bytes())
    return load_dataset(str(tmp_path), 16)


CAPTIONING = [
    Case("captioning: text file named .jpg", _image("a.jpg", "not an image at all"), CaptionDataError,
         ("Cannot read image file", "a.jpg")),
    Case("captioning: truncated JPEG", _image("t.jpg", _jpeg_bytes()[:200]), CaptionDataError,
         ("Cannot read image file", "t.jpg")),
    Case("captioning: empty image file", _image("e.png", b""), CaptionDataError, ("Cannot read image file",)),
    Case("captioning: image file missing", lambda tmp_path: _image_missing(tmp_path), CaptionDataError,
         ("Image file not found",)),
    Case("captioning: caption names a missing image", _captions("a.png#0\ta cat\nb.png#0\ta dog\n"),
         CaptionDataError, ("line 2", "names the image 'b.png'", "there is no file")),
    Case("captioning: caption line without a tab", _captions("a.png#0\ta cat\na.png a dog\n"),
         CaptionDataError, ("line 2", "found no tab")),
    Case("captioning: empty captions file", _captions("\n"), CaptionDataError, ("is empty",)),
    Case("captioning: captions file not UTF-8", _captions("a.png#0\tun caf\xe9\n".encode("latin-1")),
         CaptionDataError, ("not UTF-8 text",)),
    Case("captioning: CSV row without a caption", _captions("image,caption\na.png,\n", name="captions.csv"),
         CaptionDataError, ("line 2", "expected `image,caption`")),
    Case("captioning: COCO file not JSON", _coco("{'images': []"), CaptionDataError, ("is not valid JSON",)),
    Case("captioning: COCO without 'images'", _coco('{"annotations": []}'), CaptionDataError,
         ("not a COCO-style captions file", "'images' and 'annotations'")),
    Case("captioning: COCO bad images entry", _coco('{"images": [{"id": 1}], "annotations": []}'),
         CaptionDataError, ("images[0]", "'id' and 'file_name'")),
    Case("captioning: COCO bad annotation entry", _coco('{"images": [], "annotations": [7]}'),
         CaptionDataError, ("annotations[0]", "expected an object")),
    Case("captioning: unreadable image skipped with --skip-bad", _skip_bad_image,
         check=lambda result: len(result[0]) == 1 and "b.png" in result[1][0][0]),
    Case("captioning: folder without a captions file", _folder_without_captions, CaptionDataError,
         ("No captions file in the folder", "captions.txt")),
]


def _image_missing(tmp_path):
    from keras_gated.tasks.captioning.data import read_image

    return read_image(str(tmp_path / "gone.jpg"), 16)


# ------------------------------------------------------- saved .keras files


def _saved_model(tmp_path):
    path = str(tmp_path / "model.keras")
    model = keras.Sequential([keras.Input((3, 2)), kg.PeepholeLSTM(4), keras.layers.Dense(2)])
    model.save(path)
    return path


def _load(mutate, expected_class=None):
    from keras_gated.tasks.base import load_saved_model

    def run(tmp_path):
        path = _saved_model(tmp_path)
        mutate(path)
        return load_saved_model(path, expected_class or keras.Model, made_by="keras-gated train sentiment")

    return run


def _truncate(path):
    with open(path, "rb") as handle:
        content = handle.read()
    with open(path, "wb") as handle:
        handle.write(content[: len(content) // 2])


def _empty(path):
    open(path, "wb").close()


def _text(path):
    with open(path, "w") as handle:
        handle.write("this is not a model\n")


def _rewrite(path, name, change):
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    members[name] = change(members[name])
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)


def _foreign(path):
    def change_recurrent(content):
        config = json.loads(content)
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "PeepholeLSTM":
                layer["registered_name"] = "other_pkg>ForeignLSTM"
                layer["class_name"] = "ForeignLSTM"
        return json.dumps(config)

    _rewrite(path, "config.json", change_recurrent)


def _corrupt_weights(path):
    _rewrite(path, "model.weights.h5", lambda content: b"\x00" * len(content))


def _bad_config(path):
    _rewrite(path, "config.json", lambda content: content[: len(content) // 2])


def _wrong_class(tmp_path):
    from keras_gated.tasks.translation import Translator

    return Translator.load(_saved_model(tmp_path))


def _missing_model(tmp_path):
    from keras_gated.tasks.base import load_saved_model

    return load_saved_model(str(tmp_path / "gone.keras"))


SAVED = [
    Case(".keras: truncated file", _load(_truncate), SavedModelError, ("not a .keras model file", "truncated")),
    Case(".keras: empty file", _load(_empty), SavedModelError, ("the model file is empty",
                                                                 "keras-gated train sentiment")),
    Case(".keras: a text file", _load(_text), SavedModelError, ("not a .keras model file",)),
    Case(".keras: objects from another package", _load(_foreign), SavedModelError,
         ("another package", "other_pkg>ForeignLSTM")),
    Case(".keras: corrupt weights", _load(_corrupt_weights), SavedModelError, ("weights cannot be read",)),
    Case(".keras: damaged config", _load(_bad_config), SavedModelError, ("config.json is not JSON",)),
    Case(".keras: a model of another class", _wrong_class, SavedModelError,
         ("holds a Sequential, not the Seq2Seq",)),
    Case(".keras: no such file", _missing_model, SavedModelError, ("no such model file",)),
]


# ------------------------------------------------------------------ CLI


def _cli(*argv):
    from keras_gated.cli import main

    def run(tmp_path):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(list(argv) + ["--output", str(tmp_path / "out")])
        if code != 0:
            raise CliError(stderr.getvalue())
        return code

    return run


def _cli_bad_file(tmp_path):
    return _cli("train", "sentiment", "--data", _file(tmp_path, "empty.csv", ""))(tmp_path)


TINY = ["--data", "sample", "--max-examples", "300", "--epochs", "1", "--verbose", "0"]
CLI = [
    Case("CLI: lm --bptt 0", _cli("train", "lm", "--data", "sample", "--bptt", "0", "--epochs", "1"), CliError,
         ("--bptt must be at least 1",)),
    Case("CLI: a bad data file", _cli_bad_file, CliError, ("keras-gated: error:", "empty.csv", "the file is empty")),
    Case("--hp: unknown name", _cli("train", "sentiment", *TINY, "--hp", "unitz=8"), CliError,
         ("Unknown hyperparameter 'unitz'", "Known:", "units")),
    Case("--hp: value outside the choices", _cli("train", "sentiment", *TINY, "--hp", "cell=tree_lstm"), CliError,
         ("'tree_lstm'", "cell")),
    Case("--hp: no '='", _cli("train", "sentiment", *TINY, "--hp", "units"), CliError,
         ("write name=value",)),
    Case("--hp: range with min > max", _cli("tune", "sentiment", *TINY, "--hp", "units=64:8"), CliError,
         ("expected min <= max",)),
    Case("--hp: no value after '='", _cli("train", "sentiment", *TINY, "--hp", "units="), CliError,
         ("no value after '='",)),
    Case("--hp: range on a choice", _cli("tune", "sentiment", *TINY, "--hp", "cell=1:3"), CliError,
         ("needs a numeric hyperparameter",)),
]


# ------------------------------------------------------------------ tfds


def _offline(run):
    def offline_run(tmp_path):
        previous = os.environ.get("KERAS_GATED_OFFLINE")
        os.environ["KERAS_GATED_OFFLINE"] = "1"
        try:
            return run(tmp_path)
        finally:
            if previous is None:
                del os.environ["KERAS_GATED_OFFLINE"]
            else:
                os.environ["KERAS_GATED_OFFLINE"] = previous

    return offline_run


def _sentiment_tfds(name):
    from keras_gated.tasks.sentiment import read_tfds

    return lambda tmp_path: read_tfds(name, data_dir=str(tmp_path / "tfds"))


def _translation_tfds(name):
    from keras_gated.tasks.translation import read_tfds_pairs

    return lambda tmp_path: read_tfds_pairs(name, data_dir=str(tmp_path / "tfds"))


def _captioning_tfds(name):
    from keras_gated.tasks.captioning.data import read_tfds

    return lambda tmp_path: read_tfds(name, 16, data_dir=str(tmp_path / "tfds"))


TFDS = [
    Case("tfds: sentiment set offline", _offline(_sentiment_tfds("imdb_reviews")), DataError,
         ("'imdb_reviews'", "cannot reach the download server", "--data sample", "--tfds-dir")),
    Case("tfds: translation set offline", _offline(_translation_tfds("ted_hrlr_translate/pt_to_en")), DataError,
         ("cannot reach the download server", "--data sample")),
    Case("tfds: captioning set offline", _offline(_captioning_tfds("coco_captions")), CaptionDataError,
         ("cannot reach the download server", "--data sample")),
    Case("tfds: unknown dataset name", _sentiment_tfds("no_such_dataset_xyz"), DataError,
         ("no_such_dataset_xyz", "not a file, 'sample', nor a tensorflow-datasets name")),
]


# ------------------------------------------------------- cell arguments


def _construct(constructor, *args, **kwargs):
    return lambda tmp_path: constructor(*args, **kwargs)


def _call(layer, inputs, **kwargs):
    return lambda tmp_path: layer(np.asarray(inputs, "float32"), **kwargs)


def _feature_mismatch(tmp_path):
    layer = kg.CoupledLSTM(3)
    layer(np.zeros((2, 4, 5), "float32"))
    return layer(np.zeros((2, 4, 6), "float32"))


def _wrong_mask(tmp_path):
    mask = np.ones((2, 3), bool)
    return kg.PeepholeLSTM(3)(np.zeros((2, 4, 5), "float32"), mask=mask)


def _stateful_batch(tmp_path):
    layer = kg.UntiedLSTM(3, stateful=True)
    layer(np.zeros((4, 2, 5), "float32"))
    return layer(np.zeros((3, 2, 5), "float32"))


CELLS = [
    Case("cell: units=0", _construct(kg.PeepholeLSTM, 0), ValueError, ("`units`", "positive integer", "0")),
    Case("cell: units negative", _construct(kg.CoupledLSTMCell, -3), ValueError, ("`units`", "-3")),
    Case("cell: units a string", _construct(kg.DepthGatedLSTM, "8"), ValueError, ("`units`", "'8'")),
    Case("cell: units a float", _construct(kg.GridLSTM, 2.5), ValueError, ("`units`", "2.5")),
    Case("cell: dropout outside [0, 1)", _construct(kg.UntiedLSTM, 4, dropout=1.5), ValueError,
         ("`dropout`", "[0, 1)", "dropout=1.5")),
    Case("cell: negative recurrent_dropout", _construct(kg.PeepholeLSTMCell, 4, recurrent_dropout=-0.1),
         ValueError, ("`recurrent_dropout`", "recurrent_dropout=-0.1")),
    Case("cell: unknown peephole gate", _construct(kg.PeepholeLSTM, 4, peepholes="x"), ValueError,
         ("`peepholes`", "('i', 'f', 'o')")),
    Case("cell: unknown activation", _construct(kg.CoupledLSTM, 4, activation="tanhh"), ValueError,
         ("`activation`", "'tanhh'")),
    Case("cell: fast_path not a choice", _construct(kg.PeepholeLSTM, 4, fast_path="yes"), ValueError,
         ("`fast_path` must be 'auto'",)),
    Case("cell: layer_norm not a bool", _construct(kg.LSTM, 4, layer_norm="yes"), ValueError,
         ("`layer_norm` must be True or False", "'yes'")),
    Case("cell: projection_units=0", _construct(kg.PeepholeLSTM, 4, projection_units=0), ValueError,
         ("`projection_units` must be a positive integer", "projection_units=0")),
    Case("cell: negative cell_clip", _construct(kg.CoupledLSTM, 4, cell_clip=-1.0), ValueError,
         ("`cell_clip` must be a positive number", "cell_clip=-1.0")),
    Case("cell: zoneout outside [0, 1)", _construct(kg.UntiedLSTM, 4, zoneout=(0.1, 1.0)), ValueError,
         ("`zoneout` must be a rate in [0, 1)", "(0.1, 1.0)")),
    Case("cell: an LSTM option on the Grid LSTM", _construct(kg.GridLSTM, 4, zoneout=0.1), ValueError,
         ("GridLSTMCell does not take zoneout yet", "DepthGatedLSTMCell")),
    Case("cell: rank-2 input", _call(kg.PeepholeLSTM(3), np.zeros((2, 5))), ValueError, ("expected ndim=3", "(2, 5)")),
    Case("cell: feature width changed after build", _feature_mismatch, ValueError, ("6",)),
    Case("cell: mask of the wrong shape", _wrong_mask, ValueError, ("the mask has shape (2, 3)", "(2, 4)")),
    Case("cell: stateful call with another batch size", _stateful_batch, ValueError,
         ("a batch of 4 sequences", "a batch size of 3")),
]


# ---------------------------------------------------------- NaN and Inf


def _one_bad_row(value):
    """A non-finite value in one row stays in that row: the other rows equal a clean run."""

    def run(tmp_path):
        layer = kg.DepthGatedLSTM(3, num_layers=2, seed=1)
        clean = np.random.default_rng(0).normal(size=(3, 4, 5)).astype("float32")
        poisoned = clean.copy()
        poisoned[1, 2, 0] = value
        return np.asarray(layer(clean)), np.asarray(layer(poisoned))

    return run


def _rows_isolated(result):
    clean, poisoned = result
    return (np.array_equal(clean[[0, 2]], poisoned[[0, 2]]) and not np.all(np.isfinite(poisoned[1]))
            and np.all(np.isfinite(clean)))


def _bad_training_value(value):
    def run(tmp_path):
        from keras_gated.tuning.guards import StopOnNonFiniteLoss

        model = keras.Sequential([keras.Input((4, 2)), kg.CoupledLSTM(3), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        x = np.ones((8, 4, 2), "float32")
        x[6, 1, 1] = value  # the second batch of 4
        return model.fit(x, np.ones((8, 1)), batch_size=4, epochs=2, shuffle=False, verbose=0,
                         callbacks=[StopOnNonFiniteLoss()])

    return run


def _fully_masked_row(tmp_path):
    layer = kg.PeepholeLSTM(3, return_sequences=True)
    mask = np.array([[True] * 4, [False] * 4])
    return np.asarray(layer(np.ones((2, 4, 5), "float32"), mask=mask))


NON_FINITE = [
    Case("input: NaN in one row", _one_bad_row(np.nan), check=_rows_isolated),
    Case("input: Inf in one row", _one_bad_row(np.inf), check=_rows_isolated),
    Case("input: fully masked row", _fully_masked_row, check=lambda out: np.all(np.isfinite(out))),
    Case("training: NaN in the training data", _bad_training_value(np.nan), NonFiniteLossError,
         ("the loss is nan at epoch 1, batch 2", "NaN, Inf or empty")),
    # An Inf input saturates the gates to a finite loss; its gradient turns
    # the weights to NaN, so the guard stops at the next batch.
    Case("training: Inf in the training data", _bad_training_value(np.inf), NonFiniteLossError,
         ("the loss is nan at epoch 2, batch 1", "NaN, Inf or empty")),
]

CASES = SENTIMENT + TRANSLATION + LANGUAGE_MODEL + CAPTIONING + SAVED + CLI + TFDS + CELLS + NON_FINITE


def test_the_table_has_at_least_forty_distinct_kinds():
    kinds = [case.kind for case in CASES]
    assert len(set(kinds)) == len(kinds), "a kind appears twice"
    assert len(kinds) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.kind)
def test_bad_input(case, tmp_path):
    if case.error is None:
        result = case.run(tmp_path)
        assert case.check(result), f"{case.kind}: survived, but the check failed on {result!r:.300}"
        return
    with pytest.raises(case.error) as raised:
        case.run(tmp_path)
    message = str(raised.value)
    for fragment in case.says:
        assert fragment in message, f"{case.kind}: {fragment!r} not in the message:\n{message}"


def test_docs_errors_lists_every_kind():
    with open(os.path.join(REPO_ROOT, "docs", "errors.md"), encoding="utf-8") as handle:
        page = handle.read()
    missing = [case.kind for case in CASES if f"| {case.kind} |" not in page]
    assert not missing, f"docs/errors.md lacks rows for: {missing}"


def test_download_errors_resolve():
    """The specific errors caught around downloads still exist where they are imported from."""
    from keras_gated.tasks.base import _download_errors

    errors = _download_errors()
    assert OSError in errors
    assert all(isinstance(error, type) and issubclass(error, BaseException) for error in errors)
    assert len(errors) >= 4
    assert Exception not in errors and BaseException not in errors
