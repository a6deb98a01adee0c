"""Loading a saved `.keras` model with messages that name what is wrong with the file."""

import os

from keras_gated.tasks.common.errors import SavedModelError


def load_saved_model(path, expected_class=None, made_by="keras-gated train|tune", compile=False):
    """Loads a `.keras` file with a message that names what is wrong with it.

    Keras reports a truncated or non-zip file as "File not found" and a model
    of another package as a `TypeError` about deserialisation; this names the
    actual problem and the fix.

    Args:
        path: The `.keras` file.
        expected_class: The class the model must be (e.g. `Seq2Seq`), or None.
        made_by: The command that writes such files, for the messages.
        compile: Passed to `keras.saving.load_model`.

    Raises:
        SavedModelError: missing, empty, truncated or corrupt file, objects of
            another package, or a model of another class.
    """
    import json
    import zipfile

    import keras

    import keras_gated  # noqa: F401  (registers the cells for deserialization)

    if not os.path.isfile(path):
        raise SavedModelError(f"{path}: no such model file.")
    if os.path.getsize(path) == 0:
        raise SavedModelError(f"{path}: the model file is empty; save it again with `{made_by}`.")
    if not zipfile.is_zipfile(path):
        raise SavedModelError(
            f"{path}: not a .keras model file (a .keras file is a zip archive; this one is "
            f"truncated or of another format). Copy it again or save it again with `{made_by}`."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            names = set(archive.namelist())
            if damaged is None and "config.json" in names:
                config_text = archive.read("config.json")
    except (zipfile.BadZipFile, EOFError) as error:
        raise SavedModelError(
            f"{path}: the .keras archive is damaged ({error}). "
            f"Copy it again or save it again with `{made_by}`."
        ) from None
    if damaged is not None:
        problem = f"its member {damaged!r} fails its checksum"
    elif not {"config.json", "metadata.json"} <= names:
        problem = "it has no config.json or metadata.json"
    else:
        problem = None
    if problem:
        raise SavedModelError(
            f"{path}: the .keras archive is damaged ({problem}). "
            f"Copy it again or save it again with `{made_by}`."
        )
    try:
        config = json.loads(config_text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SavedModelError(f"{path}: the model's config.json is not JSON ({error}).") from None
    foreign = sorted(_foreign_objects(config))
    if foreign:
        raise SavedModelError(
            f"{path}: the model uses objects of another package ({', '.join(foreign[:5])}); "
            f"import that package before loading it, or load a model saved by `{made_by}`."
        )
    try:
        model = keras.saving.load_model(path, compile=compile)
    except OSError as error:  # h5py: the weights inside the archive are not HDF5
        raise SavedModelError(f"{path}: the model's weights cannot be read ({error}).") from None
    if expected_class is not None and not isinstance(model, expected_class):
        raise SavedModelError(
            f"{path} holds a {model.__class__.__name__}, not the {expected_class.__name__} "
            f"that `{made_by}` saves."
        )
    return model


def _foreign_objects(config):
    """`registered_name`s in a saved config that no registered class answers to."""
    import keras

    found = set()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("registered_name")
            if isinstance(name, str) and ">" in name and keras.saving.get_registered_object(name) is None:
                found.add(name)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
