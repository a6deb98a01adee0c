"""Sentiment classification with a tuned gated recurrent model.

A thin wrapper around `keras-gated tune sentiment` (all options:
`python examples/sentiment.py --help`):

    python examples/sentiment.py --data sample --max-trials 4 --epochs 3
    python examples/sentiment.py --data imdb_reviews --tuner bayesian --max-trials 20

Python use of the saved model:

    from keras_gated.tasks.sentiment import load_classifier
    classifier = load_classifier("runs/sentiment/best_model.keras")
    print(classifier.predict(["the acting was not bad at all"]))
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gated.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["tune", "sentiment", *sys.argv[1:]]))
