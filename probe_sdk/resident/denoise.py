"""Denoising: the state changes only when k of the last n samples agree on the other state."""

from __future__ import annotations

from collections import deque
from typing import Deque

UP = "up"
DOWN = "down"


class Denoiser:
    """A new runner starts `up`: one failed sample is noise, k failed of the last n is `down`."""

    def __init__(self, k: int, n: int, state: str = UP) -> None:
        if not 1 <= k <= n:
            raise ValueError("denoise needs 1 <= k <= n, got k=%s n=%s" % (k, n))
        self.k = k
        self.recent: Deque[bool] = deque(maxlen=n)
        self.state = state

    def add(self, ok: bool) -> bool:
        """Record one sample's outcome; True when the state changed because of it."""
        self.recent.append(ok)
        wanted = UP if ok else DOWN
        if wanted != self.state and sum(1 for seen in self.recent if seen == ok) >= self.k:
            self.state = wanted
            return True
        return False
