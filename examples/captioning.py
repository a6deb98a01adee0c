"""Image captioning with a gated-cell decoder and visual attention.

A thin wrapper around `keras-gated` (all options:
`python examples/captioning.py tune --help`):

    python examples/captioning.py train --data sample --hp cell=coupled --epochs 15
    python examples/captioning.py tune --data sample --hp cell=lstm,peephole,coupled --max-trials 6
    python examples/captioning.py tune --data Flickr8k/ --encoder MobileNetV3Small \\
        --encoder-weights imagenet --image-size 224
    python examples/captioning.py caption --model runs/captioning/best_model.keras photo.jpg

The first word picks the command (train, tune, evaluate, caption; default
tune). Python use of a saved model:

    from keras_gated.tasks import captioning
    model = captioning.load_model("runs/captioning/best_model.keras")
    print(captioning.caption_files(model, ["photo.jpg"], method="beam"))
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gated.cli import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    command = argv.pop(0) if argv and argv[0] in ("train", "tune", "evaluate", "caption") else "tune"
    if command == "caption":
        sys.exit(main(["caption", *argv]))
    sys.exit(main([command, "captioning", *argv]))
