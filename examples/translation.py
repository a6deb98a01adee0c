"""Train a small translator on the embedded travel phrases, then use it.

    python examples/translation.py                       # English -> Kelvan sample
    python examples/translation.py --hp cell=peephole --epochs 20
    python examples/translation.py --data pairs.tsv --source-column 1 --target-column 0

Every option of `keras-gated train translation` works here (see
`keras-gated train translation --help`); the model lands in
`runs/translation/best_model.keras` unless `--output` says otherwise.
"""

import os
import sys

from keras_gated import cli
from keras_gated.tasks.translation import Translator


def main(argv):
    output = argv[argv.index("--output") + 1] if "--output" in argv else "runs/translation"
    status = cli.main(["train", "translation", *argv])
    if status:
        return status
    translator = Translator.load(os.path.join(output, "best_model.keras"))
    sentences = ["Where is the station?", "I would like two cold beers, please."]
    for sentence, translation in zip(
        sentences, translator.translate(sentences, beam_width=4, length_penalty=0.6)
    ):
        print(f"{sentence}  ->  {translation}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
