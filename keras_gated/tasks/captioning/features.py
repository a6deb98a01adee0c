"""Encoder features computed once and cached on disk.

A frozen backbone maps the same image to the same features every epoch, so
they are computed once and kept in `cache_dir` as `.npy` files. The file name
is a hash of everything the features depend on: the backbone, where its
weights came from (for a weights file, its path, size and modification
time), the image size, and the images themselves (file paths with size and
modification time, or the bytes of in-memory images). Change any of these
and a new cache file is written; the old one is never reused by mistake.
"""

import hashlib
import os

import numpy as np


def feature_cache_key(encoder, dataset, weights_source):
    digest = hashlib.sha256()
    digest.update(f"{encoder.backbone_name}|{encoder.image_size}|".encode())
    digest.update(f"{encoder.coordinates}|{encoder.feature_dim}|".encode())
    source = str(weights_source)
    if os.path.isfile(source):
        info = os.stat(source)
        source = f"{os.path.abspath(source)}:{info.st_size}:{info.st_mtime_ns}"
    digest.update(source.encode())
    if dataset.sources is not None:
        for path in dataset.sources:
            info = os.stat(path)
            digest.update(f"{os.path.abspath(path)}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    else:
        digest.update(np.ascontiguousarray(dataset.images).tobytes())
    return f"{encoder.backbone_name}-{encoder.image_size}-{digest.hexdigest()[:20]}"


def encode_images(encoder, images, batch_size=64):
    """`encoder(images)` batch by batch, as one NumPy array `[N, L, F]`."""
    from keras import ops

    chunks = [
        ops.convert_to_numpy(encoder(images[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks, axis=0).astype(np.float32)


def cached_features(encoder, dataset, cache_dir, weights_source="none", batch_size=64):
    """The encoder features of `dataset`'s images, from the cache if there.

    Args:
        encoder: a frozen `ImageEncoder` (`encoder.cacheable`).
        dataset: a `CaptionDataset` with its images loaded.
        cache_dir: folder of the `.npy` cache files.
        weights_source: where the backbone weights came from
            (`--encoder-weights`), part of the cache key.

    Returns `(features, path, hit)`: the array `[N, L, F]`, the cache file
    and whether it was read from the cache.
    """
    if not encoder.cacheable:
        raise ValueError(
            "Features can only be cached for a frozen keras.applications "
            f"backbone; this encoder is {encoder.backbone_name!r} with "
            f"fine_tune={encoder.fine_tune}."
        )
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(
        cache_dir, feature_cache_key(encoder, dataset, weights_source) + ".npy"
    )
    if os.path.isfile(path):
        features = np.load(path)
        if features.shape[0] == len(dataset):
            return features, path, True
    features = encode_images(encoder, dataset.images, batch_size)
    partial = path + ".partial.npy"
    np.save(partial, features)
    os.replace(partial, path)  # never leave a half-written cache behind
    return features, path, False
