"""Corpus BLEU and chrF through sacrebleu: the one place that builds its reference streams."""


def reference_streams(references):
    """sacrebleu's reference streams from one list of references per hypothesis.

    sacrebleu wants stream k to hold the k-th reference of every hypothesis;
    hypotheses with fewer references get `None` there (sacrebleu skips it).
    """
    width = max((len(refs) for refs in references), default=1)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def corpus_bleu(hypotheses, references, max_ngram_order=4, tokenize=None):
    """sacrebleu's corpus BLEU (a `BLEUScore`: `.score` 0-100, `str()` its signature).

    Args:
        hypotheses: Detokenized strings.
        references: `references[i]` is the list of references of `hypotheses[i]`.
        max_ngram_order: 4 for BLEU-4, 1 for BLEU-1, ...
        tokenize: sacrebleu's tokenizer name (`"13a"`, `"char"`), or None for its default.
    """
    from sacrebleu.metrics import BLEU

    options = {"max_ngram_order": max_ngram_order}
    if tokenize is not None:
        options["tokenize"] = tokenize
    return BLEU(**options).corpus_score(list(hypotheses), reference_streams(references))


def corpus_chrf(hypotheses, references):
    """sacrebleu's corpus chrF (a `CHRFScore`, `.score` 0-100); arguments as `corpus_bleu`."""
    from sacrebleu.metrics import CHRF

    return CHRF().corpus_score(list(hypotheses), reference_streams(references))
