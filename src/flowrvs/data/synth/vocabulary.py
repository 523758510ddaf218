"""The words of the synthetic grammar: object attributes, motion clauses, relations, and the
closed vocabulary every generated sentence uses (``VOCABULARY``, sorted)."""

from __future__ import annotations

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (245, 215, 30),
    "purple": (140, 50, 200),
    "orange": (250, 130, 20),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond")
SIZES: tuple[str, ...] = ("small", "large")
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")
TEXTURE_PROBS: tuple[float, ...] = (0.7, 0.15, 0.15)
GENERIC_NOUNS: tuple[str, ...] = ("shape", "object")
NUMBERS: dict[int, str] = {2: "two", 3: "three"}
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
RELATIONS: tuple[str, ...] = ("above", "below", "left of", "right of")
# motion tag -> the clauses that express it
MOTION_CLAUSES: dict[str, tuple[str, ...]] = {
    "left": ("that moves to the left", "moving left"),
    "right": ("that moves to the right", "moving right"),
    "up": ("that moves up", "moving up"),
    "down": ("that moves down", "moving down"),
    "stops": ("that stops",),
    "turns": ("that turns",),
    "still": ("that does not move",),
    "enters": ("that enters",),
    "leaves": ("that leaves",),
}

# Expected fraction of each expression kind (motion falls back to the others for 1-frame videos).
EXPRESSION_MIX: dict[str, float] = {"appearance": 0.60, "motion": 0.25, "relation": 0.10, "multi": 0.05}
EXPRESSION_KINDS: tuple[str, ...] = tuple(EXPRESSION_MIX)


def plural_of(noun: str) -> str:
    """The plural of a noun of the grammar (every noun takes ``s``)."""
    return noun + "s"


def _build_vocabulary() -> list[str]:
    words = {"the", "that", "moves", "moving", "to", "stops", "turns", "enters", "leaves", "does", "not", "move", "of"}
    words |= set(COLOURS) | set(SIZES) | set(TEXTURES) | set(NUMBERS.values())
    for noun in SHAPES + GENERIC_NOUNS:
        words |= {noun, plural_of(noun)}
    for clauses in MOTION_CLAUSES.values():
        for clause in clauses:
            words |= set(clause.split())
    for rel in RELATIONS:
        words |= set(rel.split())
    return sorted(words)


VOCABULARY: list[str] = _build_vocabulary()
