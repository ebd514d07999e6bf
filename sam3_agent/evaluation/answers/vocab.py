"""The words of the answer suite: everyday nouns (with the shape, colour and size they are drawn with), the
roles they can play (surfaces things sit on, containers, small things, covers), colour attributes and plurals.

A scene never holds a bare noun and an attribute phrase of the same noun ("cup" with "red cup"): the exact
``SceneSegmenter`` would not find "red cup" objects for "cups", and a reader would, so such a scene has no
clear answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Noun:
    """How objects named ``word`` are drawn: shape, colour, and width / height ranges in pixels."""

    word: str
    shape: str
    color: Color
    width: tuple[int, int] = (24, 40)
    height: tuple[int, int] = (24, 40)


_SMALL = [
    Noun("cup", "ellipse", (200, 60, 60)),
    Noun("mug", "box", (150, 90, 40), (22, 32), (24, 34)),
    Noun("glass", "ellipse", (120, 190, 220), (18, 26), (28, 40)),
    Noun("apple", "ellipse", (190, 30, 40)),
    Noun("orange", "ellipse", (240, 150, 30)),
    Noun("lemon", "ellipse", (235, 220, 60), (24, 34), (18, 26)),
    Noun("egg", "ellipse", (210, 180, 140), (18, 24), (24, 32)),
    Noun("ball", "ellipse", (60, 120, 200)),
    Noun("bottle", "box", (40, 140, 90), (16, 22), (36, 50)),
    Noun("phone", "box", (40, 40, 50), (18, 24), (32, 42)),
    Noun("vase", "ellipse", (150, 80, 170), (22, 30), (34, 48)),
    Noun("candle", "box", (230, 190, 110), (12, 18), (30, 42)),
    Noun("jar", "box", (170, 200, 120), (22, 30), (26, 36)),
    Noun("shoe", "ellipse", (90, 60, 40), (34, 46), (18, 24)),
    Noun("hat", "ellipse", (60, 60, 140), (34, 44), (20, 28)),
    Noun("knife", "box", (160, 160, 170), (36, 50), (8, 12)),
    Noun("person", "ellipse", (220, 170, 130), (18, 26), (44, 60)),
    Noun("clock", "ellipse", (70, 130, 180), (28, 40), (28, 40)),
    Noun("book", "box", (120, 50, 90), (26, 40), (20, 30)),
    Noun("bag", "box", (130, 100, 60), (30, 42), (26, 36)),
    Noun("plant", "ellipse", (50, 150, 50), (26, 36), (30, 44)),
    Noun("strawberry", "ellipse", (220, 40, 80), (18, 24), (20, 26)),
]
_SURFACES = [
    Noun("table", "box", (150, 110, 70), (90, 130), (26, 40)),
    Noun("tray", "box", (180, 180, 190), (80, 110), (18, 26)),
    Noun("bench", "box", (120, 90, 60), (90, 130), (14, 20)),
    Noun("desk", "box", (110, 80, 50), (90, 130), (28, 40)),
    Noun("mat", "box", (90, 150, 160), (80, 110), (14, 20)),
]
_CONTAINERS = [
    Noun("box", "box", (180, 140, 90), (70, 96), (60, 84)),
    Noun("basket", "box", (200, 160, 90), (70, 96), (56, 80)),
    Noun("crate", "box", (140, 110, 80), (70, 96), (60, 84)),
    Noun("drawer", "box", (100, 80, 70), (70, 96), (56, 76)),
]
_TINY = [
    Noun("coin", "ellipse", (220, 190, 60), (12, 16), (12, 16)),
    Noun("marble", "ellipse", (80, 170, 210), (12, 16), (12, 16)),
    Noun("key", "box", (190, 190, 150), (16, 22), (8, 12)),
    Noun("button", "ellipse", (210, 90, 140), (12, 18), (12, 18)),
    Noun("ring", "ellipse", (230, 200, 80), (12, 16), (12, 16)),
]
_COVERS = [
    Noun("cloth", "box", (200, 70, 130), (34, 56), (22, 36)),
    Noun("towel", "box", (70, 170, 200), (30, 50), (20, 32)),
    Noun("napkin", "box", (240, 200, 120), (22, 32), (20, 30)),
    Noun("newspaper", "box", (130, 130, 130), (40, 60), (26, 40)),
    Noun("blanket", "box", (150, 90, 200), (40, 60), (24, 40)),
]
NOUNS: dict[str, Noun] = {n.word: n for n in (*_SMALL, *_SURFACES, *_CONTAINERS, *_TINY, *_COVERS)}
SMALL = tuple(n.word for n in _SMALL)
"""Things of similar size: subjects and anchors of most relations, counted, ordered."""
SURFACES = tuple(n.word for n in _SURFACES)
"""Wide, flat things that small things sit on (and that things stand under)."""
CONTAINERS = tuple(n.word for n in _CONTAINERS)
TINY = tuple(n.word for n in _TINY)
"""Things small enough to lie inside a container."""
COVERS = tuple(n.word for n in _COVERS)
"""Flat things lying over part of a surface: the masks taken out of it ("the table not covered by the cloth")."""
ABSENT_ONLY = ("giraffe", "elephant", "piano", "bicycle", "umbrella", "guitar", "kite", "zebra", "toaster")
"""Nouns no scene ever holds: what the absent queries ask for."""

COLORS: dict[str, Color] = {
    "red": (210, 40, 40),
    "blue": (40, 70, 210),
    "green": (40, 160, 60),
    "yellow": (230, 200, 30),
    "purple": (130, 50, 170),
    "black": (30, 30, 30),
}
ATTRIBUTE_NOUNS = ("cup", "ball", "book", "bag", "hat", "vase")


def article(phrase: str) -> str:
    """ "a cup", "an apple"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def head(phrase: str) -> str:
    """The noun of a phrase: "red cup" -> "cup"."""
    return phrase.split()[-1]


def noun_of(phrase: str) -> Noun:
    """How a phrase is drawn: its noun's shape and size; an attribute phrase takes its colour."""
    words = phrase.split()
    noun = NOUNS[words[-1]]
    if len(words) == 2:
        return Noun(noun.word, noun.shape, COLORS[words[0]], noun.width, noun.height)
    return noun


def attribute_phrases(rng: random.Random, noun: str, n: int) -> list[str]:
    """``n`` distinct colour phrases of one noun: ["red cup", "blue cup"]."""
    return [f"{c} {noun}" for c in rng.sample(sorted(COLORS), n)]


def pick_words(rng: random.Random, pool: Sequence[str], n: int, taken: Iterable[str] = ()) -> list[str]:
    """``n`` distinct nouns of ``pool`` whose head noun differs from every phrase in ``taken`` and each other."""
    used = {head(p) for p in taken}
    free = [w for w in pool if w not in used]
    if len(free) < n:
        raise ValueError(f"only {len(free)} noun(s) of {list(pool)} are free, {n} wanted")
    return rng.sample(free, n)


def subject_phrase(rng: random.Random, pool: Sequence[str] = SMALL, taken: Iterable[str] = ()) -> str:
    """A subject: mostly a bare noun of ``pool``, sometimes a colour phrase ("blue ball")."""
    taken = list(taken)
    nouns = [w for w in ATTRIBUTE_NOUNS if w in pool and w not in {head(p) for p in taken}]
    if nouns and rng.random() < 0.25:
        return f"{rng.choice(sorted(COLORS))} {rng.choice(nouns)}"
    return pick_words(rng, pool, 1, taken)[0]
