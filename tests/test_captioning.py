"""Tests of the captioning task (keras_gated.tasks.captioning)."""

import json
import os

import keras
import numpy as np
import pytest

from keras_gated.tasks.captioning import data as cap_data
from keras_gated.tasks.captioning import evaluation
from keras_gated.tasks.captioning import pipeline
from keras_gated.tasks.captioning.data import CaptionDataError
from keras_gated.tasks.captioning.features import cached_features
from keras_gated.tasks.captioning.model import ImageCaptioner
from keras_gated.tasks.captioning.sample import make_sample_dataset
from keras_gated.tasks.captioning.sample import write_sample_dataset
from keras_gated.tuning import available_cells

# The learning budget: 600 rendered 32x32 scenes (480 for training, three
# captions each = 45 batches of 32 per epoch), 10 epochs = 450 steps.
LEARN_EPOCHS = 10
# Measured BLEU-4 after 450 steps, seeds 0, 1, 2: validation 33.1, 37.4, 40.2,
# test 34.1, 39.9, 33.5;
# the constant caption that scores best on this data gets about 11.
BLEU4_THRESHOLD = 28.0


def tiny_config(tmp_path, **overrides):
    values = dict(
        data="sample", sample_size=600, image_size=32, epochs=LEARN_EPOCHS,
        cell="lstm", units=64, embedding_dim=32, attention_units=32,
        encoder_filters=32, batch_size=32, learning_rate=5e-3,
        output_dir=str(tmp_path), log_dir=None, verbose=0, num_examples=2, seed=0,
    )
    values.update(overrides)
    return pipeline.CaptionConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One model trained on the embedded data, shared by the tests that need one."""
    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("trained")
    result = pipeline.train(tiny_config(out, log_dir=str(out / "logs")))
    return result, out


# ----------------------------------------------------------------- learning


def test_learns_sample_dataset_to_bleu4_threshold(trained):
    result, out = trained
    constant = _best_constant_bleu4()
    assert result["validation"]["bleu4"] >= BLEU4_THRESHOLD, result["validation"]
    assert result["test"]["bleu4"] >= BLEU4_THRESHOLD, result["test"]
    assert result["test"]["bleu4"] > constant + 10.0, (result["test"], constant)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider"}
    assert metrics["test"]["bleu4"] == pytest.approx(result["test"]["bleu4"])


def _best_constant_bleu4():
    """BLEU-4 of the most frequent training caption written for every image."""
    from collections import Counter

    images, captions = make_sample_dataset(600, 32, seed=0)
    dataset = cap_data.CaptionDataset(captions, images=images)
    train, _, test = dataset.split(0.1, 0.1, seed=0)
    common = Counter(c for refs in train.captions for c in refs).most_common(1)[0][0]
    return evaluation.bleu_scores([common] * len(test), test.captions)["bleu4"]


def test_attention_pictures_are_written_and_logged(trained):
    result, out = trained
    assert len(result["attention_pngs"]) == 2
    from PIL import Image

    for path in result["attention_pngs"]:
        with Image.open(path) as picture:
            assert picture.size[0] > 96 and picture.mode == "RGB"
    events = list((out / "logs" / "attention").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard images were written"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(out / "logs" / "attention"))
    accumulator.Reload()
    assert "attention_00" in accumulator.Tags()["tensors"]


# ------------------------------------------------------------- the model


def _small_model(cell="lstm", encoder="small_cnn", num_layers=1, image_size=32, **kw):
    vocabulary = cap_data.Vocabulary.fit(["a red circle left of two blue squares"])
    return ImageCaptioner(
        vocabulary, image_size=image_size, encoder=encoder, cell=cell, units=16,
        embedding_dim=8, attention_units=8, encoder_filters=8, num_layers=num_layers,
        max_length=6, **kw,
    )


def test_attention_weights_sum_to_one_over_locations():
    model = _small_model()
    images = np.random.RandomState(0).randint(0, 255, (3, 32, 32, 3)).astype("float32")
    tokens = np.array([[2, 5, 6, 7, 8, 9]] * 3, np.int32)
    logits, attention = model.attend({"images": images, "tokens": tokens})
    attention = keras.ops.convert_to_numpy(attention)
    rows, cols = model.encoder.grid_shape
    assert attention.shape == (3, 6, rows * cols)
    assert np.all(attention >= 0)
    np.testing.assert_allclose(attention.sum(axis=-1), 1.0, atol=1e-5)
    # Attention depends on the image: two images do not get the same map.
    assert not np.allclose(attention[0], attention[1])


@pytest.mark.parametrize("cell", available_cells())
def test_every_cell_decodes(cell):
    # Two levels: a StackedRNNCells for most cells, the native stack for
    # depth_gated and grid; gru stays one layer (a one-tensor state).
    model = _small_model(cell=cell, num_layers=1 if cell == "gru" else 2)
    images = np.zeros((2, 32, 32, 3), "float32")
    tokens = np.array([[2, 5, 6]] * 2, np.int32)
    logits = model({"images": images, "tokens": tokens})
    assert tuple(logits.shape) == (2, 3, len(model.vocabulary))
    captions = model.generate(images=images, max_length=4)
    assert len(captions) == 2 and all(len(c) <= 4 for c in captions)


def test_cached_and_uncached_features_give_the_same_outputs(tmp_path):
    # 64 pixels give MobileNetV3Small a 2x2 grid, so attention has a choice.
    model = _small_model(encoder="MobileNetV3Small", image_size=64)
    assert model.encoder.cacheable and model.encoder.grid_shape == (2, 2)
    images, captions = make_sample_dataset(5, 64, seed=4)
    dataset = cap_data.CaptionDataset(captions, images=images)
    cache = str(tmp_path / "cache")
    features, path, hit = cached_features(model.encoder, dataset, cache)
    assert not hit and os.path.isfile(path)
    again, path_again, hit_again = cached_features(model.encoder, dataset, cache)
    assert hit_again and path_again == path
    np.testing.assert_array_equal(features, again)
    tokens = np.array([[2, 5, 6, 7]] * 5, np.int32)
    from_images = model({"images": images, "tokens": tokens})
    from_cache = model({"features": again, "tokens": tokens})
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(from_images), keras.ops.convert_to_numpy(from_cache),
        rtol=1e-5, atol=1e-5,
    )
    assert model.caption(images=images) == model.caption(features=again)
    # Other images are another cache entry, never the stale one.
    other = cap_data.CaptionDataset(captions, images=images[::-1].copy())
    _, other_path, other_hit = cached_features(model.encoder, other, cache)
    assert other_path != path and not other_hit


def test_unknown_backbone_and_cell_are_clear_errors():
    with pytest.raises(ValueError, match="backbone.*NoSuchNet"):
        _small_model(encoder="NoSuchNet")
    with pytest.raises(ValueError, match="nocell"):
        _small_model(cell="nocell")
    with pytest.raises(ValueError, match="encoder_weights"):
        _small_model(encoder="MobileNetV3Small", encoder_weights="/no/such/file.h5")


# ------------------------------------------------- save, load, caption


def test_save_load_and_caption_give_the_same_captions(trained, tmp_path, capsys):
    result, _ = trained
    model = result["model"]
    images, _ = make_sample_dataset(6, 32, seed=99)
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image

    paths = []
    for n, image in enumerate(images):
        paths.append(str(folder / f"p{n}.png"))
        Image.fromarray(image).save(paths[-1])
    before = model.caption(images=images)
    before_beam = model.caption(images=images, method="beam", beam_width=3)
    assert any(before), before
    loaded = pipeline.load_model(result["model_path"])
    assert loaded.caption(images=images) == before
    assert loaded.caption(images=images, method="beam", beam_width=3) == before_beam
    assert [c for _, c in pipeline.caption_files(loaded, paths)] == before

    from keras_gated.cli import main

    capsys.readouterr()
    status = main(["caption", "--model", result["model_path"], str(folder),
                   "--output", str(tmp_path / "captions.json")])
    assert status == 0
    printed = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert [p for p, _ in printed] == paths
    assert [c for _, c in printed] == before
    assert [r["caption"] for r in json.loads((tmp_path / "captions.json").read_text())] == before


# ----------------------------------------------------------- bad data


@pytest.fixture()
def flickr_folder(tmp_path):
    write_sample_dataset(str(tmp_path), num_images=12, image_size=32, seed=5)
    return tmp_path


def test_flickr_folder_and_csv_and_coco_load(flickr_folder, tmp_path):
    dataset = cap_data.load_dataset(str(flickr_folder), 32)
    assert len(dataset) == 12 and all(len(c) == 3 for c in dataset.captions)
    assert dataset.images.shape == (12, 32, 32, 3)
    lines = (flickr_folder / "captions.txt").read_text().splitlines()
    csv_path = flickr_folder / "captions.csv"
    csv_path.write_text("image,caption\n" + "\n".join(
        f"{line.split(chr(9))[0].split('#')[0]},\"{line.split(chr(9))[1]}\"" for line in lines))
    from_csv = cap_data.load_dataset(str(csv_path), 32)
    assert from_csv.captions == dataset.captions
    coco = {"images": [{"id": n, "file_name": f"{n:06d}.png"} for n in range(12)],
            "annotations": [{"image_id": int(line[:6]), "caption": line.split("\t")[1]}
                            for line in lines]}
    coco_path = flickr_folder / "captions_coco.json"
    coco_path.write_text(json.dumps(coco))
    from_coco = cap_data.load_dataset(str(coco_path), 32,
                                      images_dir=str(flickr_folder / "images"))
    assert from_coco.captions == dataset.captions
    np.testing.assert_array_equal(from_coco.images, dataset.images)


def _break_folder(folder):
    (folder / "images" / "000003.png").write_bytes(b"this is not a png")
    os.remove(folder / "images" / "000005.png")
    with open(folder / "captions.txt", "a") as handle:
        handle.write("\tcaption naming no image\n")


def test_bad_items_raise_errors_naming_the_file(flickr_folder):
    captions = str(flickr_folder / "captions.txt")
    os.remove(flickr_folder / "images" / "000005.png")
    with pytest.raises(CaptionDataError, match=r"000005\.png"):
        cap_data.load_dataset(str(flickr_folder), 32)
    write_sample_dataset(str(flickr_folder), num_images=12, image_size=32, seed=5)
    (flickr_folder / "images" / "000003.png").write_bytes(b"this is not a png")
    with pytest.raises(CaptionDataError, match=r"Cannot read image file .*000003\.png"):
        cap_data.load_dataset(str(flickr_folder), 32)
    write_sample_dataset(str(flickr_folder), num_images=12, image_size=32, seed=5)
    with open(captions, "a") as handle:
        handle.write("\tcaption naming no image\n")
    with pytest.raises(CaptionDataError, match=r"captions\.txt, line 37: .*names no image"):
        cap_data.load_dataset(str(flickr_folder), 32)
    with open(captions, "a") as handle:
        handle.write("no tab on this line\n")
    with pytest.raises(CaptionDataError, match=r"line 37"):
        cap_data.load_dataset(str(flickr_folder), 32)


def test_skip_bad_goes_on_past_bad_items(flickr_folder):
    _break_folder(flickr_folder)
    with pytest.warns(UserWarning, match="Skipping"):
        dataset = cap_data.load_dataset(str(flickr_folder), 32, skip_bad=True)
    assert len(dataset) == 10
    skipped = " ".join(reason for _, reason in dataset.skipped)
    assert "000003.png" in skipped and "000005.png" in skipped and "line 37" in skipped


def test_cli_stops_on_bad_file_then_tunes_past_it_with_skip_bad_and_resumes(
    flickr_folder, tmp_path, capsys
):
    from keras_gated.cli import main

    _break_folder(flickr_folder)
    out = tmp_path / "search"
    command = ["tune", "captioning", "--data", str(flickr_folder), "--image-size", "32",
               "--epochs", "1", "--batch-size", "8", "--output", str(out), "--verbose", "0",
               "--tuner", "grid", "--max-trials", "2", "--hp", "cell=gru,peephole",
               "--hp", "units=16", "--hp", "embedding_dim=32", "--hp", "attention_units=32",
               "--encoder-filters", "8", "--num-examples", "1"]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("keras-gated: error:") and "line 37" in error

    command.append("--skip-bad")
    with pytest.warns(UserWarning, match="Skipping"):
        assert main(command) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "000003.png" in printed and "000005.png" in printed
    results = json.loads((out / "results.json").read_text())
    assert {row["hyperparameters"]["cell"] for row in results["trials"]} == {"gru", "peephole"}
    assert all(set(pipeline_metric_names()) <= set(row) for row in results["trials"])
    assert (out / "best_model.keras").is_file()
    assert list((out / "attention").glob("*.png"))
    for row in results["trials"]:  # TensorBoard scalars for every trial
        assert list((out / "logs" / row["trial"] / "execution0" / "validation").iterdir())
    checkpoints = sorted((out / "tuner" / "captioning").glob("trial_*/checkpoint.weights.h5"))
    assert len(checkpoints) == 2
    stamps = [c.stat().st_mtime_ns for c in checkpoints]
    # The same command again resumes: no trial is trained again.
    with pytest.warns(UserWarning, match="Skipping"):
        assert main(command) == 0
    assert [c.stat().st_mtime_ns for c in checkpoints] == stamps
    again = json.loads((out / "results.json").read_text())
    assert [r["trial"] for r in again["trials"]] == [r["trial"] for r in results["trials"]]


def pipeline_metric_names():
    from keras_gated.tasks.captioning import TASK

    return TASK.metric_names


def test_tfds_without_network_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("KERAS_GATED_OFFLINE", "1")
    with pytest.raises(CaptionDataError, match="cannot reach the download server.*--data sample"):
        cap_data.load_dataset("tfds:coco_captions", 32)


# ----------------------------------------------------------- the parts


def test_sample_dataset_is_deterministic_and_relational():
    images, captions = make_sample_dataset(20, 32, seed=7)
    images2, captions2 = make_sample_dataset(20, 32, seed=7)
    np.testing.assert_array_equal(images, images2)
    assert captions == captions2
    relations = ("left of", "right of", "above", "below")
    for refs in captions:
        assert len(refs) == 3
        assert all(any(r in ref for r in relations) for ref in refs)
    assert not np.array_equal(images, make_sample_dataset(20, 32, seed=8)[0])


def test_bleu_and_cider():
    refs = [["a red circle left of a blue square", "a blue square right of a red circle"],
            ["two green triangles above a yellow circle"]]
    right = ["a red circle left of a blue square", "two green triangles above a yellow circle"]
    perfect = evaluation.caption_metrics(right, refs)
    assert perfect["bleu4"] == pytest.approx(100.0)
    wrong = evaluation.caption_metrics(["three big squares", "one small star"], refs)
    assert wrong["bleu1"] == 0.0 and wrong["cider"] == 0.0
    half = evaluation.caption_metrics([right[0], "one small star"], refs)
    assert perfect["cider"] > half["cider"] > 0.0
    # A missing reference (images with fewer captions) is allowed.
    mixed = evaluation.bleu_scores(["a b c d", "e f g h"], [["a b c d"], ["e f g h", "x"]])
    assert mixed["bleu4"] == pytest.approx(100.0)


def test_vocabulary_round_trip():
    vocabulary = cap_data.Vocabulary.fit(["A red circle, left of two blue squares."])
    ids = vocabulary.encode("a red circle left of two green squares", max_length=10)
    assert ids[0] == cap_data.START and len(ids) == 12
    assert vocabulary.decode(ids[1:]) == "a red circle left of two <unk> squares"
