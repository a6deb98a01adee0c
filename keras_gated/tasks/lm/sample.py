"""The sample corpus of the lm task: a grammar with long-range agreement.

Every sentence has a subject whose number (singular or plural) decides the
form of the main verb, and between the two the grammar puts relative
clauses ("that chases the cats", "that the farmers see") and prepositional
phrases ("near the birds"), often with nouns of the other number
("attractors"). A model that only counts recent words predicts the verb's
number at chance; one that carries the subject across the clause does not.
This is the agreement test of Linzen, Dupoux & Goldberg (2016), in a
grammar small enough for tests:

    the dog that the cats chase sleeps .
    the teachers near the king that sings watch the old horse .

`generate(count, seed)` is deterministic: the same seed gives the same
sentences, in the same order, on every machine (Python's `random.Random`).
"""

import random

#: (singular, plural) noun pairs.
NOUNS = (
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("farmer", "farmers"),
    ("teacher", "teachers"), ("child", "children"), ("girl", "girls"),
    ("boy", "boys"), ("king", "kings"), ("horse", "horses"),
)
#: (singular, plural) verbs without an object.
INTRANSITIVE_VERBS = (
    ("sleeps", "sleep"), ("runs", "run"), ("sings", "sing"),
    ("laughs", "laugh"), ("waits", "wait"), ("smiles", "smile"),
)
#: (singular, plural) verbs with an object.
TRANSITIVE_VERBS = (
    ("sees", "see"), ("chases", "chase"), ("likes", "like"),
    ("helps", "help"), ("follows", "follow"), ("watches", "watch"),
)
ADJECTIVES = ("old", "young", "small", "happy", "quiet", "clever")
PREPOSITIONS = ("near", "behind", "with")

SINGULAR, PLURAL = 0, 1

#: Word -> number, for the nouns and verbs (what the agreement test reads).
NOUN_NUMBER = {form: number for pair in NOUNS for number, form in enumerate(pair)}
VERB_NUMBER = {
    form: number for pair in INTRANSITIVE_VERBS + TRANSITIVE_VERBS for number, form in enumerate(pair)
}

#: Sentences of `--data sample` by default.
SAMPLE_SIZE = 4000


def _noun_phrase(rng, number, depth):
    """Tokens of a noun phrase whose head has `number`, and the head's index.

    At `depth` > 0 it may carry a relative clause or a prepositional phrase
    whose own nouns have random numbers (the attractors).
    """
    tokens = ["the"]
    if rng.random() < 0.3:
        tokens.append(rng.choice(ADJECTIVES))
    head = len(tokens)
    tokens.append(rng.choice(NOUNS)[number])
    if depth > 0:
        kind = rng.random()
        if kind < 0.3:  # subject relative clause: the verb agrees with this head
            tokens.append("that")
            if rng.random() < 0.5:
                tokens.append(rng.choice(INTRANSITIVE_VERBS)[number])
            else:
                tokens.append(rng.choice(TRANSITIVE_VERBS)[number])
                tokens += _noun_phrase(rng, rng.randrange(2), depth - 1)[0]
        elif kind < 0.6:  # object relative clause: its verb agrees with its own subject
            inner_number = rng.randrange(2)
            tokens.append("that")
            tokens += _noun_phrase(rng, inner_number, depth - 1)[0]
            tokens.append(rng.choice(TRANSITIVE_VERBS)[inner_number])
        elif kind < 0.8:
            tokens.append(rng.choice(PREPOSITIONS))
            tokens += _noun_phrase(rng, rng.randrange(2), depth - 1)[0]
    return tokens, head


def sentence(rng, max_depth=2):
    """One sentence: `(tokens, subject_index, verb_index)`.

    `tokens[subject_index]` is the head noun of the subject and
    `tokens[verb_index]` the main verb; they agree in number.
    """
    number = rng.randrange(2)
    tokens, subject = _noun_phrase(rng, number, max_depth)
    verb = len(tokens)
    if rng.random() < 0.5:
        tokens.append(rng.choice(INTRANSITIVE_VERBS)[number])
    else:
        tokens.append(rng.choice(TRANSITIVE_VERBS)[number])
        tokens += _noun_phrase(rng, rng.randrange(2), max_depth - 1)[0]
    tokens.append(".")
    return tokens, subject, verb


def generate_with_structure(count=SAMPLE_SIZE, seed=0, max_depth=2):
    """`count` sentences as `(tokens, subject_index, verb_index)` triples."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"The sample size must be a positive number of sentences; got {count!r}.")
    rng = random.Random(seed)
    return [sentence(rng, max_depth) for _ in range(count)]


def generate(count=SAMPLE_SIZE, seed=0, max_depth=2):
    """`count` sentences of the grammar, each a string of space-separated tokens."""
    return [" ".join(tokens) for tokens, _, _ in generate_with_structure(count, seed, max_depth)]


def agreement_cases(count=200, seed=1, max_depth=2, min_distance=3):
    """Verb-number test cases: `(prefix_tokens, correct_verb, wrong_verb)`.

    The prefix runs up to the main verb; the correct verb agrees with the
    subject, the wrong one is the same verb in the other number. Only
    sentences whose verb is at least `min_distance` tokens after the
    subject's head are kept (the cases where memory matters).
    """
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        tokens, subject, verb = sentence(rng, max_depth)
        if verb - subject < min_distance:
            continue
        correct = tokens[verb]
        pairs = INTRANSITIVE_VERBS + TRANSITIVE_VERBS
        pair = next(p for p in pairs if correct in p)
        cases.append((tokens[:verb], correct, pair[1 - VERB_NUMBER[correct]]))
    return cases
