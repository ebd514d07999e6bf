"""English number inflection for noun phrases, and the phrases to try when one finds nothing.

Only the last word of a phrase is inflected ("red cups" <-> "red cup"). Irregular nouns come from a short
table; the rest follow the usual suffix rules. Good enough for object names, not a general inflector. The one
inflection of the project: the planner's fallbacks and the evaluation's query wording both use it.
"""

from __future__ import annotations

from collections.abc import Callable

_IRREGULAR = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "child": "children",
    "mouse": "mice",
    "goose": "geese",
    "tooth": "teeth",
    "foot": "feet",
    "ox": "oxen",
    "knife": "knives",
    "leaf": "leaves",
    "wolf": "wolves",
    "shelf": "shelves",
    "loaf": "loaves",
    "half": "halves",
    "calf": "calves",
    "scarf": "scarves",
    "wife": "wives",
    "life": "lives",
    "thief": "thieves",
    "tomato": "tomatoes",
    "potato": "potatoes",
    "hero": "heroes",
    "cactus": "cacti",
    "die": "dice",
    "lens": "lenses",
}
_SINGULAR = {plural: singular for singular, plural in _IRREGULAR.items()}
_INVARIANT = {"sheep", "deer", "fish", "scissors", "skis", "pants", "jeans", "shorts", "series", "species"}
_SIBILANT = ("s", "x", "z", "ch", "sh")
_VOWELS = "aeiou"


def singular(phrase: str) -> str:
    """The phrase with its last word singular: "red cups" -> "red cup"; singular phrases as they are."""
    return _last_word(phrase, _singular)


def plural(phrase: str) -> str:
    """The phrase with its last word plural: "red cup" -> "red cups", "person" -> "people"."""
    return _last_word(phrase, _plural)


def _last_word(phrase: str, inflect: Callable[[str], str]) -> str:
    *head, last = phrase.split() or [phrase]
    return " ".join([*head, inflect(last)])


def _singular(word: str) -> str:
    """cups -> cup, boxes -> box, berries -> berry, knives -> knife, people -> person; singular words as is."""
    if word in _SINGULAR:
        return _SINGULAR[word]
    if word in _INVARIANT or word in _IRREGULAR or len(word) < 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(_SIBILANT):
        stem = word[:-2]
        if stem.endswith("s") and not (stem.endswith("ss") or (stem.endswith("us") and stem[-3:-2] not in _VOWELS)):
            return word[:-1]  # vases -> vase, houses -> house (but glasses -> glass, buses -> bus)
        return stem
    if word.endswith("s"):
        return word[:-1]
    return word


def _plural(word: str) -> str:
    """cup -> cups, box -> boxes, berry -> berries, knife -> knives, person -> people."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _INVARIANT or word in _SINGULAR:
        return word
    if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
        return word[:-1] + "ies"
    if word.endswith(_SIBILANT):
        return word + "es"
    return word + "s"


def is_plural(word: str) -> bool:
    """Whether ``word`` reads as a plural noun (cups, people); invariant nouns count as singular."""
    return word in _SINGULAR or (word not in _INVARIANT and _singular(word) != word)


def other_number(phrase: str) -> str:
    """The phrase with its last word switched between singular and plural: "red cups" <-> "red cup"."""
    last = phrase.split()[-1]
    return singular(phrase) if is_plural(last) else plural(phrase)


def fallbacks(phrase: str) -> list[str]:
    """The phrases to try, in order, until one finds something: the phrase itself, its other number, then
    (for several words) its head noun and the head noun's other number. "red cups" -> ["red cups", "red cup",
    "cups", "cup"]."""
    words = phrase.split()
    tries = [phrase, other_number(phrase)]
    if len(words) > 1:
        tries += [words[-1], other_number(words[-1])]
    return list(dict.fromkeys(tries))
