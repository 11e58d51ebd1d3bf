"""`batched`: itertools.batched for Python 3.11 (it arrives in 3.12)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items: bounded memory and round trips over a long stream."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
