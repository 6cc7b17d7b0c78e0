"""Chains scored side by side give the rows, in order, that one by one gives."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from loralab.protein.reconstruct import reconstruct
from loralab.protein.scoring import map_chains


def _distances(n: int, seed: int) -> np.ndarray:
    X = np.cumsum(np.random.default_rng(seed).normal(0, 2.2, (n, 3)), axis=0)
    return np.linalg.norm(X[:, None] - X[None], axis=-1)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pooled_reconstructions_equal_one_by_one_and_keep_the_order(workers):
    matrices = [_distances(n, seed) for seed, n in enumerate([9, 14, 6, 11, 8])]
    with threadpool_limits(limits=1):  # the serial reference with the same BLAS threads
        alone = [reconstruct(D) for D in matrices]
    pooled = list(map_chains(reconstruct, matrices, workers=workers))
    assert len(pooled) == len(alone)
    for a, b in zip(alone, pooled):
        np.testing.assert_array_equal(a, b)


def test_the_blas_limit_is_lifted_afterwards():
    before = [p["num_threads"] for p in threadpool_info()]
    assert before  # numpy's BLAS is there to limit
    seen = list(map_chains(lambda _: [p["num_threads"] for p in threadpool_info()], range(3), workers=2))
    assert all(t == 1 for threads in seen for t in threads)
    assert [p["num_threads"] for p in threadpool_info()] == before
