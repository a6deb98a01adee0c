"""Translation task: data, tokenizers, the seq2seq model, decoding, BLEU, CLI."""

import json

import keras
import numpy as np
import pytest

from keras_gated import decoding
from keras_gated.seq2seq import END_ID
from keras_gated.seq2seq import START_ID
from keras_gated.seq2seq import Seq2Seq
from keras_gated.tasks import DataError
from keras_gated.tasks import translation as tr
from keras_gated.tasks import travel_phrases
from keras_gated.text import Tokenizer
from keras_gated.text import Vocabulary
from keras_gated.tuning import available_cells

# Learning test budget: steps, not time.
SAMPLE_PAIRS = 1600
BATCH_SIZE = 32
EPOCHS = 10  # 1280 training pairs -> 40 steps per epoch -> 400 steps
BLEU_THRESHOLD = 85.0  # measured: 98.97 (beam 4), 96.27 (greedy)


# ------------------------------------------------------------- tokenizers


@pytest.mark.parametrize(
    "text",
    [
        "Where is the station, please?",
        "I don't need a check-in desk (gate 5) today!",
        "¿Dónde está la estación? Muy bien: 20% menos.",
        "L'hôtel est près de la gare.",
    ],
)
@pytest.mark.parametrize("lowercase", [False, True])
def test_word_tokenizer_round_trips(text, lowercase):
    tokenizer = Tokenizer("word", lowercase=lowercase)
    tokens = tokenizer.tokenize(text)
    assert tokenizer.detokenize(tokens) == tokenizer.normalize(text)
    assert all(" " not in t for t in tokens)


def test_word_tokenizer_splits_punctuation_and_keeps_inner_apostrophes():
    tokens = Tokenizer("word").tokenize("I don't know, check-in?")
    assert tokens == ["I", "don't", "know", ",", "check-in", "?"]


@pytest.mark.parametrize("text", ["我想去火车站。", "请问, 这个 多少钱？", "駅はどこですか。"])
def test_char_tokenizer_round_trips(text):
    tokenizer = Tokenizer("char")
    tokens = tokenizer.tokenize(text)
    assert tokenizer.detokenize(tokens) == tokenizer.normalize(text)
    assert tokens[:3] == list(text.replace(" ", "▁")[:3])


def test_tokenizers_round_trip_the_whole_sample():
    word = Tokenizer("word")
    for english, kelvan in travel_phrases.generate(300):
        assert word.detokenize(word.tokenize(english)) == english
        assert word.detokenize(word.tokenize(kelvan)) == kelvan


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split"):
        Tokenizer("bpe")


def test_vocabulary_is_deterministic_and_maps_unknown_tokens():
    sentences = [["b", "a", "c"], ["a", "b"], ["a"]]
    vocabulary = Vocabulary.build(sentences)
    assert vocabulary.tokens == ["", "[UNK]", "<s>", "</s>", "a", "b", "c"]
    assert Vocabulary.build(list(reversed(sentences))).tokens == vocabulary.tokens
    assert vocabulary.encode(["a", "zzz"]) == [4, 1]
    assert vocabulary.decode([2, 4, 5, 3, 6]) == ["a", "b"]
    assert Vocabulary.build(sentences, max_size=5).tokens[-1] == "a"


# -------------------------------------------------------------------- data


def test_sample_corpus_is_deterministic_distinct_and_reorders_words():
    pairs = travel_phrases.generate(500)
    assert pairs == travel_phrases.generate(500)
    assert len({english for english, _ in pairs}) == 500
    starts = {"Where": 0, "I would like": 0}
    for english, kelvan in pairs:
        if english.startswith("Where"):
            starts["Where"] += 1
            assert kelvan.endswith("kewe esta ka?")
        if english.startswith("I would like") and "to go" not in english:
            starts["I would like"] += 1
            assert kelvan.startswith("Pelu, mi ") and kelvan.endswith(" volu.")
    assert min(starts.values()) > 20


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_read_pairs_ignores_extra_columns_and_picks_the_direction(tmp_path):
    path = write(tmp_path / "pairs.tsv", "Hello.\tSalut.\tCC-BY #1\n\nThanks.\tMerci.\tCC-BY #2\n")
    assert tr.read_pairs(path) == [("Hello.", "Salut."), ("Thanks.", "Merci.")]
    assert tr.read_pairs(path, 1, 0) == [("Salut.", "Hello."), ("Merci.", "Thanks.")]


def test_empty_file_is_reported(tmp_path):
    path = write(tmp_path / "empty.tsv", "\n\n")
    with pytest.raises(DataError, match=r"empty\.tsv: the file is empty"):
        tr.read_pairs(path)


def test_line_without_tab_names_file_and_line(tmp_path):
    path = write(tmp_path / "pairs.tsv", "Hello.\tSalut.\nThanks. Merci.\n")
    with pytest.raises(DataError, match=r"pairs\.tsv, line 2: no tab"):
        tr.read_pairs(path)


def test_wrong_column_index_names_file_and_line(tmp_path):
    path = write(tmp_path / "pairs.tsv", "Hello.\tSalut.\tx\nThanks.\tMerci.\n")
    with pytest.raises(DataError, match=r"pairs\.tsv, line 2: 2 columns.*--target-column 2"):
        tr.read_pairs(path, 0, 2)


def test_empty_column_and_missing_file_are_reported(tmp_path):
    path = write(tmp_path / "pairs.tsv", "Hello.\t \n")
    with pytest.raises(DataError, match=r"line 1: the target column \(1\) is empty"):
        tr.read_pairs(path)
    with pytest.raises(DataError, match="no such file"):
        tr.read_pairs(str(tmp_path / "missing.tsv"))


def test_tfds_name_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_GATED_OFFLINE", "1")
    with pytest.raises(DataError, match="--data sample"):
        tr.load_pairs("ted_hrlr_translate/pt_to_en", tfds_dir=str(tmp_path))


def test_splits_keep_a_source_and_its_translations_together():
    pairs = [(f"s{i}", f"t{i}") for i in range(40)] + [("s3", "u3"), ("s7", "u7")]
    splits = tr.split_pairs(pairs, 0.25, 0.25, seed=3)
    train_sources = {s for s, _ in splits.train}
    assert not train_sources & set(splits.test_sources)
    assert not train_sources & set(splits.val_sources)
    assert len(splits.test_sources) == len(splits.val_sources) == 10
    for source, references in zip(splits.test_sources, splits.test_references):
        assert references == [t for s, t in pairs if s == source]


def test_bleu_and_chrf_of_perfect_and_wrong_output():
    refs = [["Mi taksio un beza."], ["Banko la kewe esta ka?", "Banko kewe esta ka?"]]
    perfect = tr.corpus_scores(["Mi taksio un beza.", "Banko kewe esta ka?"], refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    wrong = tr.corpus_scores(["Nu.", "Ka."], refs)
    assert wrong["bleu"] < 5.0 and wrong["chrf"] < 30.0


# ------------------------------------------------------------------- model


@pytest.mark.parametrize("cell", available_cells())
def test_one_step_decoding_equals_the_teacher_forced_pass(cell):
    attention = {"lstm": "dot", "gru": "none"}.get(cell, "additive")
    model = Seq2Seq(
        13, 11, cell=cell, units=8, num_layers=2, bidirectional=cell in ("lstm", "grid"),
        attention=attention,
    )
    rng = np.random.default_rng(0)
    source = rng.integers(4, 13, size=(3, 5)).astype("int32")
    source[0, 3:] = 0  # padding is masked
    decoder_inputs = rng.integers(2, 11, size=(3, 4)).astype("int32")
    logits = keras.ops.convert_to_numpy(model((source, decoder_inputs)))
    state = model.encode(source)
    for t in range(decoder_inputs.shape[1]):
        step_logits, state = model.decode_step(decoder_inputs[:, t], state)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(step_logits), logits[:, t], atol=1e-5
        )


def test_padding_does_not_change_the_translation():
    model = Seq2Seq(13, 11, cell="peephole", units=8, bidirectional=True)
    source = np.array([[5, 6, 7]], "int32")
    padded = np.array([[5, 6, 7, 0, 0]], "int32")
    decoder_inputs = np.array([[2, 4, 5]], "int32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model((source, decoder_inputs))),
        keras.ops.convert_to_numpy(model((padded, decoder_inputs))),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [({"attention": "luong"}, "attention"), ({"cell": "rnn"}, "cell"), ({"units": 0}, "units")],
)
def test_bad_model_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Seq2Seq(10, 10, **kwargs)


# ------------------------------------------------- learning and decoding


@pytest.fixture(scope="module")
def trained():
    """A tiny LSTM translator trained for a fixed number of steps."""
    keras.utils.set_random_seed(7)
    pairs = travel_phrases.generate(SAMPLE_PAIRS)
    data = tr.prepare_data(pairs, "sample", max_length=20, seed=1)
    hypermodel = tr.TranslationHyperModel(
        len(data.source.vocabulary),
        len(data.target.vocabulary),
        data.metadata,
        overrides=[
            "cell=lstm;units=32;embedding_dim=32;attention=additive;"
            "learning_rate=0.01;optimizer=adam;clipnorm=1.0;dropout=0.0"
        ],
    )
    import keras_tuner

    model = hypermodel.build(keras_tuner.HyperParameters())
    (x, y) = data.train_arrays
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=True, verbose=0)
    return data, model


@pytest.mark.slow
def test_model_learns_the_sample_to_a_bleu_threshold(trained):
    data, model = trained
    translator = tr.Translator(model)
    result = tr.evaluate_translator(
        translator, data.splits.test_sources, data.splits.test_references,
        beam_width=4, examples=3,
    )
    assert result["bleu"] >= BLEU_THRESHOLD, result
    assert result["chrf"] >= BLEU_THRESHOLD, result
    assert len(result["examples"]) == 3


@pytest.mark.slow
def test_beam_width_one_equals_greedy_on_the_model(trained):
    data, model = trained
    source = tr.pad([data.source.encode(s) for s in data.splits.test_sources[:16]])
    encoded = model.encode(source)
    greedy, _ = decoding.greedy_search(model.step_fn, encoded, 16, START_ID, END_ID, 20)
    beam, _ = decoding.beam_search(
        model.step_fn, encoded, 16, START_ID, END_ID, 20, beam_width=1, length_penalty=0.6
    )
    np.testing.assert_array_equal(beam, greedy)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_never_scores_below_greedy_under_the_model(trained, alpha):
    data, model = trained
    # Untrained-looking inputs too: sentences the model has never seen.
    sources = data.splits.test_sources[:12] + ["Taxi beer where station?", "Please please."]
    source = tr.pad([data.source.encode(s) for s in sources])
    n = len(sources)
    encoded = model.encode(source)
    greedy, _ = decoding.greedy_search(model.step_fn, encoded, n, START_ID, END_ID, 20)
    beam, beam_scores = decoding.beam_search(
        model.step_fn, encoded, n, START_ID, END_ID, 20, beam_width=4, length_penalty=alpha
    )

    def model_score(tokens):
        total = decoding.sequence_log_prob(model.step_fn, encoded, tokens, START_ID, END_ID)
        lengths = [list(r).index(END_ID) + 1 if END_ID in list(r) else len(r) for r in tokens]
        return total / decoding.length_penalty(lengths, alpha)

    np.testing.assert_allclose(beam_scores, model_score(beam), rtol=1e-4, atol=1e-4)
    assert np.all(model_score(beam) >= model_score(greedy) - 1e-4)


@pytest.mark.slow
def test_save_load_translate_gives_the_same_output(trained, tmp_path):
    data, model = trained
    sentences = data.splits.test_sources[:10]
    before = tr.Translator(model).translate(sentences, beam_width=3)
    path = str(tmp_path / "translator.keras")
    model.save(path)
    loaded = tr.Translator.load(path)
    assert loaded.translate(sentences, beam_width=3) == before
    assert loaded.translate(sentences, beam_width=1) == tr.Translator(model).translate(
        sentences, beam_width=1
    )


@pytest.mark.slow
def test_translate_command_reads_a_file_and_keeps_blank_lines(trained, tmp_path):
    from keras_gated import cli

    data, model = trained
    path = str(tmp_path / "model.keras")
    model.save(path)
    sentences = data.splits.test_sources[:3]
    source_file = write(tmp_path / "in.txt", f"{sentences[0]}\n\n{sentences[1]}\n{sentences[2]}\n")
    out_file = str(tmp_path / "out.txt")
    status = cli.main(
        ["translate", "--model", path, "--input", source_file, "--output", out_file,
         "--beam-width", "2"]
    )
    assert status == 0
    lines = open(out_file, encoding="utf-8").read().split("\n")
    expected = tr.Translator(model).translate(sentences, beam_width=2)
    assert lines == [expected[0], "", expected[1], expected[2], ""]


@pytest.mark.slow
def test_evaluate_command_on_a_file_writes_json(trained, tmp_path, capsys):
    from keras_gated import cli

    data, model = trained
    path = str(tmp_path / "model.keras")
    model.save(path)
    pairs_file = write(
        tmp_path / "test.tsv", "".join(f"{s}\t{t}\n" for s, t in data.splits.test[:20])
    )
    out = str(tmp_path / "eval.json")
    status = cli.main(
        ["evaluate", "translation", "--model", path, "--data", pairs_file,
         "--beam-width", "1", "--examples", "2", "--output", out]
    )
    assert status == 0
    result = json.load(open(out))
    assert result["count"] == 20 and len(result["examples"]) == 2
    # sacrebleu reports a perfect score as 100 plus rounding (100.00000000000004).
    assert 0.0 <= result["bleu"] <= 100.0 + 1e-9 and result["chrf"] > 0.0


def test_bad_pairs_file_on_the_command_line_is_one_clear_error(tmp_path, capsys):
    from keras_gated import cli

    path = write(tmp_path / "bad.tsv", "no tab here\n")
    status = cli.main(["train", "translation", "--data", path, "--output", str(tmp_path)])
    assert status == 2
    assert "bad.tsv, line 1: no tab" in capsys.readouterr().err


def test_hypermodel_builds_the_chosen_model_and_adds_the_bleu_callback():
    import keras_tuner

    pairs = travel_phrases.generate(60)
    data = tr.prepare_data(pairs, "sample", seed=1)
    hypermodel = tr.TranslationHyperModel(
        len(data.source.vocabulary), len(data.target.vocabulary), data.metadata,
        overrides=["cell=gru;units=8;embedding_dim=8;attention=dot;bidirectional=True"],
        bleu_data=(data.splits.val_sources, data.splits.val_references),
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert isinstance(model, Seq2Seq) and model.built
    assert (model.cell, model.units, model.attention, model.bidirectional) == (
        "gru", 8, "dot", True
    )
    assert model.metadata["target"]["vocabulary"] == data.target.vocabulary.tokens
    # Label smoothing 0.1 is the default; 0 is Keras's plain cross-entropy.
    from keras_gated.losses import SmoothedSparseCrossentropy
    from keras_gated.tasks.translation.model import TRANSLATION_LABEL_SMOOTHING

    assert isinstance(model.loss, SmoothedSparseCrossentropy)
    assert model.loss.label_smoothing == pytest.approx(TRANSLATION_LABEL_SMOOTHING)
    assert model.loss.ignore_class == 0
    # The optimizer is built at compile, so the first train step is traced once.
    assert model.optimizer.built
    plain = tr.TranslationHyperModel(
        len(data.source.vocabulary), len(data.target.vocabulary), data.metadata,
        overrides=["cell=gru;units=8;embedding_dim=8;label_smoothing=0"],
    ).build(keras_tuner.HyperParameters())
    assert type(plain.loss) is keras.losses.SparseCategoricalCrossentropy

    class RecordingModel:
        def fit(self, *args, callbacks=None, **kwargs):
            self.callbacks = callbacks
            return "history"

    recording = RecordingModel()
    tuner_callback = keras.callbacks.Callback()
    assert hypermodel.fit(hp, recording, callbacks=[tuner_callback]) == "history"
    # The BLEU callback comes first, so the tuner's callbacks see val_bleu.
    assert recording.callbacks[1] is tuner_callback
    assert type(recording.callbacks[0]).__name__ == "BleuCallback"


@pytest.mark.slow
def test_bleu_callback_writes_val_bleu_into_the_logs(trained):
    data, model = trained
    callback = tr.bleu_callback(
        data.splits.val_sources, data.splits.val_references, max_sentences=40
    )
    callback.set_model(model)
    logs = {"val_loss": 0.1}
    callback.on_epoch_end(0, logs)
    assert logs["val_bleu"] >= BLEU_THRESHOLD and logs["val_chrf"] >= BLEU_THRESHOLD
    assert logs["val_loss"] == 0.1


def test_the_compiled_decoding_step_reads_the_current_weights():
    from task_checks import check_compiled_decoding_reads_the_current_weights

    check_compiled_decoding_reads_the_current_weights()


@pytest.mark.parametrize("overrides, layer_class", [
    ((), "CoupledLSTM"),
    (("cell=lstm",), "keras.layers.LSTM"),
])
def test_the_default_cell_is_the_coupled_lstm_and_hp_gives_keras_lstm_back(overrides, layer_class):
    import keras_tuner

    import keras_gated as kg
    from keras_gated.tasks.translation import model as translation_model

    model = tr.TranslationHyperModel(12, 14, {}, overrides=overrides).build(
        keras_tuner.HyperParameters()
    )
    expected = keras.layers.LSTM if layer_class == "keras.layers.LSTM" else kg.CoupledLSTM
    assert translation_model.TRANSLATION_CELL == "coupled"
    for layer in model.encoder_layers + model.decoder_layers:
        assert type(layer) is expected, layer
