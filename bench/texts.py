"""The prose the benchmarks synthesize: one English paragraph, repeated to any length."""

PARAGRAPH = (
    "The lighthouse keeper climbed the spiral stairs every evening, counting each of the one hundred and twelve "
    "steps under his breath. At the top he wiped the great lens, trimmed the wick, and watched the last fishing "
    "boats turn for home. Storms came often in the autumn, and on those nights he stayed awake until dawn, "
    "listening to the wind and the waves against the rocks below. Nobody in the village remembered a ship lost "
    "on his watch. "
)


def text_of(chars: int) -> str:
    """`chars` characters of plain English prose, cut at a word."""
    text = PARAGRAPH * (chars // len(PARAGRAPH) + 1)
    return text[:chars].rsplit(" ", 1)[0] + "."
