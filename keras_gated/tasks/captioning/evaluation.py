"""BLEU-1..4 (sacrebleu), CIDEr-D (NumPy), and attention-map pictures."""

import json
import math
import os
from collections import Counter

import numpy as np

from keras_gated.tasks.captioning.data import tokenize
from keras_gated.tasks.common import corpus_bleu


def bleu_scores(hypotheses, references):
    """Corpus BLEU-1..4 (0-100) of `hypotheses` against lists of references.

    Images may have different numbers of references
    (`keras_gated.tasks.common.reference_streams`).
    """
    return {
        f"bleu{order}": float(corpus_bleu(hypotheses, references, max_ngram_order=order).score)
        for order in range(1, 5)
    }


def _ngrams(words, n):
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def cider_d(hypotheses, references, sigma=6.0):
    """CIDEr-D (Vedantam et al. 2015) x 10 as in the COCO toolkit, no Java.

    Document frequencies come from the references of this corpus, as the
    COCO evaluation computes them.
    """
    refs_ngrams = [[[_ngrams(tokenize(r), n) for n in range(1, 5)] for r in refs]
                   for refs in references]
    hyp_ngrams = [[_ngrams(tokenize(h), n) for n in range(1, 5)] for h in hypotheses]
    document_frequency = Counter()
    for refs in refs_ngrams:
        seen = set()
        for ref in refs:
            for counts in ref:
                seen.update(counts)
        document_frequency.update(seen)
    log_count = math.log(float(len(references)))

    def vector(counts_by_n):
        vecs, norms = [], []
        for counts in counts_by_n:
            vec = {g: tf * (log_count - math.log(max(1.0, document_frequency[g])))
                   for g, tf in counts.items()}
            vecs.append(vec)
            norms.append(math.sqrt(sum(v * v for v in vec.values())))
        length = sum(counts_by_n[0].values())
        return vecs, norms, length

    total = 0.0
    for hyp, refs in zip(hyp_ngrams, refs_ngrams):
        h_vec, h_norm, h_len = vector(hyp)
        score = np.zeros(4)
        for ref in refs:
            r_vec, r_norm, r_len = vector(ref)
            for n in range(4):
                dot = sum(min(v, r_vec[n].get(g, 0.0)) * r_vec[n].get(g, 0.0)
                          for g, v in h_vec[n].items())
                if h_norm[n] and r_norm[n]:
                    score[n] += dot / (h_norm[n] * r_norm[n]) * math.exp(
                        -((h_len - r_len) ** 2) / (2 * sigma ** 2))
        total += float(np.mean(score) / max(1, len(refs)) * 10.0)
    return total / max(1, len(hypotheses))


def caption_metrics(hypotheses, references, cider=True):
    scores = bleu_scores(hypotheses, references)
    if cider:
        scores["cider"] = cider_d(hypotheses, references)
    return scores


def write_json(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)


def _heat(values):
    """[0, 1] -> RGB heat colours (black-red-yellow-white)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    return np.concatenate([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1),
                           np.clip(3 * v - 2, 0, 1)], axis=-1)


def attention_figure(image, words, attention, grid_shape, references=(), cell=96):
    """A picture: the image, then one panel per word with its attention map.

    Args:
        image: uint8 `[S, S, 3]`.
        words: the generated words; attention: `[len(words), L]`.
        grid_shape: (rows, cols) of the feature grid, rows * cols = L.
        references: reference captions, written under the panels.
    Returns:
        uint8 array `[height, width, 3]`.
    """
    from PIL import Image
    from PIL import ImageDraw

    rows, cols = grid_shape
    panels = [Image.fromarray(np.asarray(image, np.uint8)).resize((cell, cell), Image.NEAREST)]
    base = np.asarray(panels[0], np.float32) / 255.0
    for k in range(len(words)):
        grid = np.asarray(attention[k], np.float32).reshape(rows, cols)
        grid = grid / max(float(grid.max()), 1e-8)
        up = np.asarray(
            Image.fromarray((grid * 255).astype(np.uint8)).resize((cell, cell), Image.BILINEAR),
            np.float32) / 255.0
        blend = 0.45 * base + 0.55 * _heat(up)
        panels.append(Image.fromarray((blend * 255).astype(np.uint8)))
    per_row = 8
    n_rows = (len(panels) + per_row - 1) // per_row
    text_lines = 1 + len(references)
    width = per_row * (cell + 4)
    height = n_rows * (cell + 16) + 12 * text_lines + 6
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    labels = ["(image)"] + list(words)
    for k, panel in enumerate(panels):
        x = (k % per_row) * (cell + 4)
        y = (k // per_row) * (cell + 16)
        canvas.paste(panel, (x, y))
        draw.text((x + 2, y + cell + 2), labels[k][:14], fill=(0, 0, 0))
    y = n_rows * (cell + 16) + 2
    draw.text((2, y), "generated: " + " ".join(words), fill=(160, 0, 0))
    for r in references:
        y += 12
        draw.text((2, y), "reference: " + r, fill=(0, 0, 0))
    return np.asarray(canvas, np.uint8)


def log_images_to_tensorboard(log_dir, named_images, step=0):
    """Writes the pictures to TensorBoard's Images tab (TensorFlow only)."""
    try:
        import tensorflow as tf
    except ImportError:
        return False
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "attention"))
    with writer.as_default():
        for name, picture in named_images:
            tf.summary.image(name, picture[None], step=step)
    writer.flush()
    return True
