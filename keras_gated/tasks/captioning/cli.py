"""`keras-gated caption`: caption image files with a saved model.

    keras-gated caption --model runs/captioning/best_model.keras photo1.jpg photos/
    keras-gated caption --model M.keras --decode beam --beam-width 5 --attention maps/ *.png
"""

import json
import os
import sys

from keras_gated.tasks.captioning.data import IMAGE_EXTENSIONS
from keras_gated.tasks.captioning.task import DECODE_CHOICES


def add_caption_arguments(parser):
    parser.add_argument("images", nargs="+",
                        help="Image files, or folders whose images are all captioned.")
    parser.add_argument("--model", required=True,
                        help="A model saved by `keras-gated train|tune captioning` "
                             "(best_model.keras).")
    parser.add_argument("--decode", choices=DECODE_CHOICES, default="greedy",
                        help="Greedy or beam search.")
    parser.add_argument("--beam-width", type=int, default=3, help="Beam width of --decode beam.")
    parser.add_argument("--length-penalty", type=float, default=0.0,
                        help="GNMT length penalty alpha of --decode beam (0 = none).")
    parser.add_argument("--max-length", type=int, default=None,
                        help="Most words per caption (default: the model's).")
    parser.add_argument("--skip-bad", action="store_true",
                        help="Skip unreadable or missing images with a warning instead of "
                             "stopping.")
    parser.add_argument("--attention", default=None, metavar="DIR",
                        help="Also save each image's per-word attention maps as PNG here.")
    parser.add_argument("--output", default=None,
                        help="Also write the captions as JSON to this file.")


def expand_image_paths(items):
    """Files as given; folders replaced by their image files, sorted."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            paths += sorted(
                os.path.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
        else:
            paths.append(item)
    return paths


def run_caption(args):
    from keras_gated.tasks.captioning.pipeline import attention_examples
    from keras_gated.tasks.captioning.pipeline import load_model
    from keras_gated.tasks.captioning.pipeline import read_images

    if not os.path.isfile(args.model):
        raise ValueError(f"--model {args.model}: no such file.")
    model = load_model(args.model)
    images, kept = read_images(expand_image_paths(args.images), model.image_size,
                               skip_bad=args.skip_bad)
    captions = model.caption(images=images, method=args.decode, beam_width=args.beam_width,
                             length_penalty=args.length_penalty, max_length=args.max_length)
    for path, caption in zip(kept, captions):
        print(f"{path}\t{caption}")
    records = [{"image": p, "caption": c} for p, c in zip(kept, captions)]
    if args.attention:
        pngs = attention_examples(model, images, images, "images", captions,
                                  [[] for _ in captions], args.attention)
        for record, png in zip(records, pngs):
            record["attention_png"] = png
    skipped = len(expand_image_paths(args.images)) - len(kept)
    if skipped:
        print(f"keras-gated: skipped {skipped} unreadable image(s)", file=sys.stderr)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(records, handle, indent=2)
    return 0
