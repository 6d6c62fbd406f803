"""Choosing the next token and deciding when a sequence is done (pure functions).

Kept apart from the engine so the rules (greedy at temperature 0, seeded
sampling otherwise, stop strings, EOS, token limits) are testable without a
model.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

GREEDY_BELOW = 1e-5  # temperatures under this decode greedily (as vLLM does): logits / 1e-300 overflow to inf


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A per-request RNG: the same seed and prompt give the same sample."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else random.getrandbits(63))
    return gen


def pick_tokens(
    logits: torch.Tensor, temperatures: Sequence[float], generators: Sequence[torch.Generator]
) -> list[int]:
    """One next token per row of ``logits`` (``[rows, vocab]``).

    Temperature 0 (or under ``GREEDY_BELOW``) means greedy (argmax);
    otherwise sample from ``softmax(logits / temperature)`` with the row's
    own generator.
    """
    greedy = logits.argmax(dim=-1).tolist()
    out = []
    for row, (temp, gen) in enumerate(zip(temperatures, generators)):
        if temp < GREEDY_BELOW:
            out.append(int(greedy[row]))
            continue
        probs = torch.softmax(logits[row].float() / temp, dim=-1)
        out.append(int(torch.multinomial(probs, 1, generator=gen).item()))
    return out


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Index where the earliest stop string begins in ``text`` (searching from ``start``), or None.

    >>> find_stop("go north\\nObservation:", ["\\nObservation", "\\n\\n"])
    8
    """
    hits = [i for i in (text.find(s, start) for s in stops if s) if i >= 0]
    return min(hits) if hits else None

