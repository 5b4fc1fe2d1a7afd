"""The built-in synthetic sentiment task: deterministic, offline, and in need of word order.

Each sentence is one or two clauses ``<subject> was [not] [intensifier] <adjective>``. A clause's polarity is its
adjective's, flipped by ``not``. Two-clause sentences join clauses with a contrast marker that decides which clause
carries the label (``A but B`` -> B, ``although A , B`` -> B, ``A even though B`` -> A). Since ``A but B`` and
``B but A`` contain the same words with opposite labels, and ``not`` flips only its own clause, a bag of embeddings
cannot solve the task while a sequence model can.

The pair variant (``synthetic_pair``) labels two such sentences 1 when their sentiments agree, else 0.

>>> texts, labels = generate_synthetic(3, seed=0)
>>> len(texts), labels.shape
(3, (3,))
"""

from __future__ import annotations

import numpy as np

SUBJECTS = (
    "the movie",
    "the film",
    "this story",
    "the plot",
    "the acting",
    "the cast",
    "the ending",
    "the script",
    "the music",
    "the direction",
    "the dialogue",
    "the pacing",
)
POSITIVE = (
    "good",
    "great",
    "wonderful",
    "brilliant",
    "charming",
    "moving",
    "clever",
    "fresh",
    "delightful",
    "superb",
    "funny",
    "gripping",
)
NEGATIVE = (
    "bad",
    "dull",
    "boring",
    "awful",
    "weak",
    "clumsy",
    "tedious",
    "flat",
    "messy",
    "poor",
    "bland",
    "predictable",
)
INTENSIFIERS = ("", "", "very", "really", "quite", "truly", "rather")
OPENERS = ("", "", "", "honestly ,", "i think", "overall ,", "to be fair ,", "in the end ,")
# (template, which clause decides the label)
CONTRASTS = (("{a} but {b}", 1), ("although {a} , {b}", 1), ("{a} even though {b}", 0), ("{a} , yet {b}", 1))


def _clause(rng: np.random.Generator) -> tuple[str, int]:
    positive = bool(rng.integers(2))
    adj = (POSITIVE if positive else NEGATIVE)[rng.integers(len(POSITIVE))]
    negated = rng.random() < 0.35
    words = [SUBJECTS[rng.integers(len(SUBJECTS))], "was"]
    if negated:
        words.append("not")
    intens = INTENSIFIERS[rng.integers(len(INTENSIFIERS))]
    if intens:
        words.append(intens)
    words.append(adj)
    return " ".join(words), int(positive != negated)


def _sentence(rng: np.random.Generator) -> tuple[str, int]:
    a, la = _clause(rng)
    opener = OPENERS[rng.integers(len(OPENERS))]
    if rng.random() < 0.35:
        text, label = a, la
    else:
        b, lb = _clause(rng)
        template, decider = CONTRASTS[rng.integers(len(CONTRASTS))]
        text, label = template.format(a=a, b=b), (la, lb)[decider]
    return (f"{opener} {text}" if opener else text) + " .", label


def generate_synthetic(n: int, seed: int = 0, pair: bool = False) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """``n`` examples as (texts, labels); texts[i] is a 1-tuple, or a 2-tuple when ``pair``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    texts: list[tuple[str, ...]] = []
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        s1, l1 = _sentence(rng)
        if pair:
            s2, l2 = _sentence(rng)
            texts.append((s1, s2))
            labels[i] = int(l1 == l2)
        else:
            texts.append((s1,))
            labels[i] = l1
    return texts, labels
