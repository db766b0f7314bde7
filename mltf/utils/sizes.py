"""Image sizes as (height, width): one parser for flags, gin values and
dataset options."""

from typing import Optional, Sequence, Tuple, Union

import numpy as np

Size = Union[int, Tuple[int, int], Sequence[int]]


def as_hw(size) -> Tuple[int, int]:
    """A size as (height, width): ``N``, ``(H, W)``, or a string ``"N"`` /
    ``"HxW"`` (flags). Raises ValueError for anything else."""
    if isinstance(size, str):
        parts = size.lower().replace(",", "x").split("x")
        try:
            size = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"a size is N or HxW, got {size!r}") from None
        if len(size) == 1:
            size = size * 2
    elif isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    else:
        size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"a size is N or (height, width) with positive sides, got {size}")
    return size


def optional_hw(value) -> Optional[Tuple[int, int]]:
    """``None``/``""``/``0`` -> None; otherwise ``as_hw(value)``."""
    if value in (None, "", 0, "0"):
        return None
    return as_hw(value)
