"""The sparse engine: the shrunk network's kernels as CSR, run by numba (obd.runtime.kernels): a tile kernel for
batches of ROW_BY_ROW rows or more, a row kernel below that (it pushes each nonzero input along its kept weights,
so it skips the zero pixels and the ReLU zeros)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from obd.core.network import InputNorm, Network
from obd.runtime.kernels import LANES, sparse_kernels
from obd.runtime.shrunk import shrink
from obd.runtime.threads import numba_threads

ROW_BY_ROW = 16  # smaller batches run row by row on one thread: a tile of 64 would be mostly padding


Csr = tuple[np.ndarray, np.ndarray, np.ndarray]  # indptr (rows + 1,) int64, indices (nnz,) uint32, data (nnz,)


@dataclass(frozen=True, eq=False)
class SparseEngine:
    """CSR kernels run by numba (see the module docstring). Build it with `sparse_engine`.

    inputs: (used inputs,) the input features some kept first-layer weight reads; sizes: (layers + 1,)
    units per layer, the first being len(inputs); by_unit: all layers' kernels.T as one CSR (a row lists a
    unit's kept weights, for the tile kernel); by_input: all layers' kernels as one CSR (a row lists what an
    input feeds, for the row kernel); bias: (sum of units,) float32, zeros where there is none;
    relu: (layers,) bool.
    """

    inputs: np.ndarray
    sizes: np.ndarray
    by_unit: Csr
    by_input: Csr
    bias: np.ndarray
    relu: np.ndarray
    n_inputs: int
    name: str = "sparse"
    input_norm: InputNorm | None = None  # the network's input transform, applied to x first

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1)).view()  # (n, inputs)
        x.flags.writeable = False  # one numba signature, one compile, whether or not the caller's x is writable
        if x.shape[1] != self.n_inputs:
            raise ValueError(f"the network takes {self.n_inputs} inputs per row, got {x.shape[1]}")
        if self.input_norm is not None:
            x = self.input_norm.apply(x)  # (n, inputs), a new C-contiguous array
            x.flags.writeable = False
        out = np.empty((len(x), int(self.sizes[-1])), dtype=np.float32)  # (n, classes)
        tiles, rows = sparse_kernels()
        if len(x) >= ROW_BY_ROW:
            width = int(self.sizes.max())
            buffers = np.empty((numba_threads(), 2, width, LANES), np.float32)  # (threads, a|b, units, lanes)
            tiles(x, self.inputs, self.sizes, *self.by_unit, self.bias, self.relu, out, buffers)
        elif len(x):
            rows(x, self.inputs, self.sizes, *self.by_input, self.bias, self.relu, out)
        return out


def csr(matrices: Sequence[np.ndarray]) -> Csr:
    """One CSR of several matrices stacked row-wise (offsets in indptr are into the shared indices/data)."""
    indptr, indices, data, start = [np.zeros(1, np.int64)], [], [], 0
    for m in matrices:
        rows, cols = np.nonzero(m)
        indptr.append(start + np.cumsum(np.bincount(rows, minlength=m.shape[0])))
        indices.append(cols.astype(np.uint32))  # unsigned: numba then skips negative-index checks
        data.append(m[rows, cols].astype(np.float32))
        start += len(rows)
    return np.concatenate(indptr).astype(np.int64), np.concatenate(indices), np.concatenate(data)


def sparse_engine(net: Network) -> SparseEngine:
    """Pack `shrink(net)` into CSR arrays for the numba kernels (unused input features are skipped)."""
    net = shrink(net)
    first = net.layers[0].kernel
    inputs = np.flatnonzero((first != 0).any(axis=1))  # (used inputs,)
    kernels = [first[inputs]] + net.kernels()[1:]  # (inputs, units) each
    biases = [np.zeros(l.units, np.float32) if l.bias is None else l.bias for l in net.layers]
    return SparseEngine(
        inputs=inputs.astype(np.int64),
        sizes=np.array([len(inputs)] + [l.units for l in net.layers], dtype=np.int64),
        by_unit=csr([k.T for k in kernels]),
        by_input=csr(kernels),
        bias=np.concatenate(biases).astype(np.float32),
        relu=np.array([l.activation == "relu" for l in net.layers]),
        n_inputs=net.layers[0].inputs,
        input_norm=net.input_norm,
    )
