"""Random matrices for the test support: one copy of each sampler the strategies, the audit's
checks and the benchmarks' inputs share."""
from __future__ import annotations

import numpy as np

__all__ = ["haar_orthogonal"]


def haar_orthogonal(rng, n, *, batch=(), dtype=np.float64):
    """A Haar-distributed orthogonal ``n x n`` matrix (a stack of them, shape ``(*batch, n, n)``).

    The Q factor of a Gaussian matrix with its column signs taken from ``diag(R)``: QR alone
    fixes the signs of ``diag(R)`` and is not Haar (Mezzadri, "How to generate random matrices
    from the classical compact groups", Notices AMS 54, 2007). Computed in float64 from
    ``rng.standard_normal`` (a :class:`numpy.random.Generator`), then cast to ``dtype``.
    """
    q, r = np.linalg.qr(rng.standard_normal((*tuple(batch), n, n)))
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
    return q.astype(dtype, copy=False)
