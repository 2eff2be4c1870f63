"""Decoding of TFLite's sparse tensor format (the input of the DENSIFY operator).

The detector stores 38 of its 1x1 convolution kernels sparse (about half the weights are zero), so
loading it needs this decoder. The format (``SparsityParameters`` in the TFLite schema) describes a
tensor as a traversal over its dimensions, optionally split into blocks:

* ``traversal_order`` lists the dimensions in storage order: first a permutation of the original
  dimensions (each divided by its block size when blocked), then the block dimensions, numbered
  ``rank + k`` for the k-th block;
* ``block_map[k]`` says which original dimension block ``k`` subdivides;
* ``dim_metadata[level]`` describes the level-th traversed dimension: DENSE (every index present,
  ``dense_size`` of them) or SPARSE_CSR (for the parent position ``p``, the present indices are
  ``array_indices[array_segments[p]:array_segments[p + 1]]``).

The stored values are the leaves of that tree in depth-first order. This module mirrors TFLite's
``FormatConverter::SparseToDense`` (tensorflow/lite/kernels/internal/utils/sparsity_format_converter.cc)
exactly, quirks included, because LiteRT is our oracle; it is vectorised with numpy (one pass per level)
so decoding happens once at load time without a Python loop per element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DimensionMetadata:
    """One traversal level: ``dense_size`` for DENSE, ``segments``/``indices`` for SPARSE_CSR."""

    sparse: bool
    dense_size: int = 0
    segments: np.ndarray | None = None
    indices: np.ndarray | None = None


@dataclass(frozen=True)
class Sparsity:
    """The decoded ``SparsityParameters`` of one tensor."""

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dim_metadata: tuple[DimensionMetadata, ...]


def _expand_dense(prev: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every parent gets children ``0..size-1``; the child position is ``prev * size + i``."""
    parent = np.repeat(np.arange(len(prev)), size)
    index = np.tile(np.arange(size, dtype=np.int64), len(prev))
    return parent, index, prev[parent] * size + index


def _expand_sparse(
    prev: np.ndarray, segments: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parent ``p`` gets the children listed in ``indices[segments[p]:segments[p+1]]``.

    Like TFLite, a parent beyond the segment array has no children and positions beyond the indices
    array are skipped; the child position passed down is the position in ``indices``.
    """
    valid = prev + 1 < len(segments)
    safe = np.where(valid, prev, 0)
    starts = np.where(valid, segments[safe], 0)
    ends = np.where(valid, segments[np.minimum(safe + 1, len(segments) - 1)], 0)
    counts = np.maximum(ends - starts, 0)
    parent = np.repeat(np.arange(len(prev)), counts)
    first_of_parent = np.repeat(np.cumsum(counts) - counts, counts)
    position = starts[parent] + (np.arange(int(counts.sum())) - first_of_parent)
    keep = position < len(indices)
    parent, position = parent[keep], position[keep]
    return parent, indices[position].astype(np.int64), position


def densify(values: np.ndarray, dense_shape: tuple[int, ...], sparsity: Sparsity) -> np.ndarray:
    """The dense tensor of ``dense_shape`` whose non-stored entries are zero.

    ``values`` is the flat array of stored values (any dtype; the result keeps it).
    """
    rank = len(dense_shape)
    order = sparsity.traversal_order
    metadata = sparsity.dim_metadata
    if len(metadata) != len(order):
        raise ValueError(f"sparsity has {len(metadata)} dim_metadata entries for {len(order)} levels")
    if sorted(order[:rank]) != list(range(rank)):
        raise ValueError(f"traversal_order {order} does not start with a permutation of 0..{rank - 1}")
    # TFLite takes block k's size from dim_metadata[traversal_order[rank + k]] (sic); mirror it.
    block_size = [metadata[order[rank + k]].dense_size for k in range(len(sparsity.block_map))]

    prev = np.zeros(1, dtype=np.int64)
    level_indices: list[np.ndarray] = []
    for meta in metadata:
        if meta.sparse:
            assert meta.segments is not None and meta.indices is not None
            parent, index, prev = _expand_sparse(prev, meta.segments.astype(np.int64), meta.indices)
        else:
            parent, index, prev = _expand_dense(prev, meta.dense_size)
        level_indices = [column[parent] for column in level_indices]
        level_indices.append(index)

    leaves = len(prev)
    flat_values = np.asarray(values).reshape(-1)
    if leaves > flat_values.size:
        raise ValueError(f"sparse tensor describes {leaves} values but stores only {flat_values.size}")

    original = [np.zeros(leaves, dtype=np.int64) for _ in range(rank)]
    for level in range(rank):
        original[order[level]] = level_indices[level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        dim = sparsity.block_map[block]
        original[dim] = original[dim] * block_size[block] + level_indices[level]

    dense = np.zeros(dense_shape, dtype=flat_values.dtype)
    if leaves:
        dense.reshape(-1)[np.ravel_multi_index(tuple(original), dense_shape)] = flat_values[:leaves]
    return dense
