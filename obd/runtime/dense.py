"""The dense engine: a (pruned) network run as dense matrices, one BLAS matmul per layer; every speed-up is
measured against it. `Engine` is what every engine provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from obd.core.network import Network


class Engine(Protocol):
    """Something that computes a network's logits."""

    @property
    def name(self) -> str:
        """The engine's kind ("dense", "shrunk" or "sparse")."""
        ...

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: (n, inputs) -> (n, classes) float32 logits."""
        ...


@dataclass(frozen=True)
class DenseEngine:
    """Dense matmuls (BLAS) on a network: "dense" on the pruned net, "shrunk" on `shrink(net)`."""

    net: Network
    name: str = "dense"

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.net.logits(x)
