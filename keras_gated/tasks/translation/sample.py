"""The embedded translation sample: travel phrases from a bilingual grammar.

keras-gated generates this corpus itself (no third-party text): English
travel-domain sentences, in the style of the BTEC phrasebook corpus, paired
with their translation into *Kelvan*, a small language made up for this
project. Kelvan's word order differs from English in the ways that make
attention matter:

* verb last (subject-object-verb): "We need two tickets." ->
  "Nu bileto du beza."
* noun first, then adjective, number and determiner: "the small red bag"
  -> "saka mala ruga la";
* postpositions: "to the station" -> "stasio la ve";
* questions end in the particle "ka", question words stay in place:
  "Where is the bank?" -> "Banko la kewe esta ka?";
* time before place before object: "I want to go to the beach tomorrow."
  -> "Mi morga plaja la ve iri vola."
* "please" leads the sentence: "I would like a coffee, please." ->
  "Pelu, mi kafo un volu."

`generate(num_pairs, seed)` returns distinct `(english, kelvan)` pairs,
always the same for the same arguments. `write_tsv(path)` writes them as
`english<TAB>kelvan` lines, the format `--data FILE` reads.
"""

import random

SAMPLE_SIZE = 6000
SAMPLE_SEED = 2015

# English singular, English plural, Kelvan.
NOUNS = (
    ("ticket", "tickets", "bileto"),
    ("room", "rooms", "kamo"),
    ("bag", "bags", "saka"),
    ("map", "maps", "karto"),
    ("taxi", "taxis", "taksio"),
    ("key", "keys", "klavo"),
    ("table", "tables", "tablo"),
    ("beer", "beers", "biro"),
    ("coffee", "coffees", "kafo"),
    ("tea", "teas", "teo"),
    ("sandwich", "sandwiches", "panino"),
    ("umbrella", "umbrellas", "ombrelo"),
    ("guide", "guides", "gvido"),
    ("phone", "phones", "telefo"),
    ("seat", "seats", "sego"),
    ("towel", "towels", "tuko"),
    ("receipt", "receipts", "kvito"),
    ("bottle of water", "bottles of water", "akvobotel"),
)
ADJECTIVES = (
    ("cold", "kalda"),
    ("hot", "varma"),
    ("small", "mala"),
    ("big", "granda"),
    ("cheap", "cipa"),
    ("expensive", "kara"),
    ("red", "ruga"),
    ("blue", "blua"),
    ("clean", "pura"),
    ("quiet", "kvieta"),
    ("new", "nova"),
    ("old", "vela"),
)
PLACES = (
    ("station", "stasio"),
    ("hotel", "hotelo"),
    ("airport", "aviodo"),
    ("museum", "muzeo"),
    ("bank", "banko"),
    ("market", "merkato"),
    ("beach", "plaja"),
    ("hospital", "hospito"),
    ("restaurant", "restoro"),
    ("pharmacy", "farmo"),
    ("post office", "postejo"),
    ("harbour", "haveno"),
)
SUBJECTS = (("I", "mi"), ("you", "tu"), ("we", "nu"), ("they", "ili"))
VERBS = (
    ("want", "vola"),
    ("need", "beza"),
    ("like", "ama"),
    ("have", "hava"),
    ("see", "vida"),
    ("buy", "kompa"),
    ("find", "trova"),
)
NUMBERS = (("two", "du"), ("three", "tri"), ("four", "kvar"))
TIMES = (
    ("today", "hodia"),
    ("tomorrow", "morga"),
    ("tonight", "nokte"),
    ("this morning", "matin ci"),
    ("on Monday", "lundo je"),
    ("on Friday", "vendo je"),
)
MOTIONS = (("want to go", "iri vola"), ("need to go", "iri beza"), ("would like to go", "iri volu"))
FIXED = (
    ("Thank you very much.", "Danko multa."),
    ("Good morning.", "Matin bona."),
    ("Good evening.", "Vespero bona."),
    ("Can you help me?", "Tu mi helpa povas ka?"),
    ("I do not understand.", "Mi ne kompre."),
    ("Please speak slowly.", "Pelu, malrapide parolu."),
    ("Excuse me.", "Pardo."),
    ("See you tomorrow.", "Morga vida."),
)


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(rng, kind):
    """(English, Kelvan) of a noun phrase: "indefinite" or "definite"."""
    english_sg, english_pl, kelvan = rng.choice(NOUNS)
    adjective = rng.choice(ADJECTIVES) if rng.random() < 0.6 else None
    english_adj = adjective[0] + " " if adjective else ""
    kelvan_adj = " " + adjective[1] if adjective else ""
    if kind == "indefinite":
        if rng.random() < 0.5:
            english = f"{_article(english_adj or english_sg)} {english_adj}{english_sg}"
            return english, f"{kelvan}{kelvan_adj} un", False
        number_en, number_kv = rng.choice(NUMBERS)
        return (
            f"{number_en} {english_adj}{english_pl}",
            f"{kelvan}{kelvan_adj} {number_kv}",
            True,
        )
    determiner_en, determiner_kv = rng.choice((("the", "la"), ("this", "ci"), ("my", "mia")))
    plural = rng.random() < 0.3
    if plural:
        determiner_en = {"this": "these"}.get(determiner_en, determiner_en)
    noun = english_pl if plural else english_sg
    return f"{determiner_en} {english_adj}{noun}", f"{kelvan}{kelvan_adj} {determiner_kv}", plural


def _place(rng):
    english, kelvan = rng.choice(PLACES)
    return f"the {english}", f"{kelvan} la"


def _capitalise(text):
    return text[0].upper() + text[1:]


def _sentence(rng):
    kind = rng.randrange(9)
    if kind == 0:
        s_en, s_kv = rng.choice(SUBJECTS)
        v_en, v_kv = rng.choice(VERBS)
        np_en, np_kv, _ = _noun_phrase(rng, rng.choice(("indefinite", "definite")))
        return f"{s_en} {v_en} {np_en}.", f"{s_kv} {np_kv} {v_kv}."
    if kind == 1:
        s_en, s_kv = rng.choice(SUBJECTS)
        v_en, v_kv = rng.choice(VERBS)
        np_en, np_kv, _ = _noun_phrase(rng, rng.choice(("indefinite", "definite")))
        return f"{s_en} do not {v_en} {np_en}.", f"{s_kv} {np_kv} ne {v_kv}."
    if kind == 2:
        s_en, s_kv = rng.choice(SUBJECTS[1:])
        v_en, v_kv = rng.choice(VERBS)
        np_en, np_kv, _ = _noun_phrase(rng, rng.choice(("indefinite", "definite")))
        return f"Do {s_en} {v_en} {np_en}?", f"{s_kv} {np_kv} {v_kv} ka?"
    if kind == 3:
        np_en, np_kv, _ = _noun_phrase(rng, "indefinite")
        return f"I would like {np_en}, please.", f"Pelu, mi {np_kv} volu."
    if kind == 4:
        if rng.random() < 0.5:
            np_en, np_kv, plural = _noun_phrase(rng, "definite")
        else:
            (np_en, np_kv), plural = _place(rng), False
        verb = "are" if plural else "is"
        return f"Where {verb} {np_en}?", f"{np_kv} kewe esta ka?"
    if kind == 5:
        np_en, np_kv, plural = _noun_phrase(rng, "definite")
        verb = "are" if plural else "is"
        return f"How much {verb} {np_en}?", f"{np_kv} kiom kosta ka?"
    if kind == 6:
        s_en, s_kv = rng.choice(SUBJECTS)
        m_en, m_kv = rng.choice(MOTIONS)
        p_en, p_kv = _place(rng)
        t_en, t_kv = rng.choice(TIMES)
        return f"{s_en} {m_en} to {p_en} {t_en}.", f"{s_kv} {t_kv} {p_kv} ve {m_kv}."
    if kind == 7:
        np_en, np_kv, plural = _noun_phrase(rng, "indefinite")
        p_en, p_kv = _place(rng)
        verb = "Are there" if plural else "Is there"
        return f"{verb} {np_en} near {p_en}?", f"{p_kv} kesa {np_kv} esta ka?"
    if rng.random() < 0.25:
        return rng.choice(FIXED)
    np_en, np_kv, plural = _noun_phrase(rng, "definite")
    a_en, a_kv = rng.choice(ADJECTIVES)
    verb = "are" if plural else "is"
    return f"{np_en} {verb} very {a_en}.", f"{np_kv} tre {a_kv} esta."


def generate(num_pairs=SAMPLE_SIZE, seed=SAMPLE_SEED):
    """`num_pairs` distinct (English, Kelvan) sentence pairs, deterministic."""
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs <= 0:
        raise ValueError(
            f"`num_pairs` must be a positive integer. Received: num_pairs={num_pairs!r}"
        )
    rng = random.Random(seed)
    pairs, seen = [], set()
    attempts = 0
    while len(pairs) < num_pairs:
        attempts += 1
        if attempts > 50 * num_pairs:
            raise ValueError(
                f"The travel-phrase grammar cannot produce {num_pairs} distinct "
                f"pairs; it stopped at {len(pairs)}."
            )
        english, kelvan = _sentence(rng)
        english, kelvan = _capitalise(english), _capitalise(kelvan)
        if english in seen:
            continue
        seen.add(english)
        pairs.append((english, kelvan))
    return pairs


def write_tsv(path, num_pairs=SAMPLE_SIZE, seed=SAMPLE_SEED):
    """Writes `generate(num_pairs, seed)` as `english<TAB>kelvan` lines."""
    with open(path, "w", encoding="utf-8") as handle:
        for english, kelvan in generate(num_pairs, seed):
            handle.write(f"{english}\t{kelvan}\n")


if __name__ == "__main__":
    import sys

    for english, kelvan in generate(int(sys.argv[1]) if len(sys.argv) > 1 else 20):
        print(f"{english}\t{kelvan}")
