"""Lattice operations on constrained MaxMin networks, reductions (min / max of many affine
functions), and exact norms: |x|, ||x||_inf, ||x||_1.

All constructions keep the universality constraints EXACTLY (in exact arithmetic on the
stored floats): they only stack first layers (row-wise norms unchanged), put later layers side
by side in block-diagonal form (row-wise norms unchanged) and add selection rows ``e_k``
(norm 1 in every l_q) [UN-3]. Selections and MaxMin are exact in floating point too, so the
networks they build evaluate their operands without extra rounding.
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import check_choice, check_int
from ..norms import check_p
from .network import Dense, MaxMinNetwork, Select, _host_array, _is_real

__all__ = ["lattice_max", "lattice_min", "deepen", "reduction_layers", "abs_network", "norm_network"]

#: Deepest network :func:`deepen` builds: far beyond any construction of this package (their
#: depth grows as ``log2`` of the number of data points), small enough that a typo such as
#: ``10**30`` is refused instead of filling the memory with selection layers.
MAX_DEPTH = 10_000


# ----------------------------------------------------------------------------------------------
# Closure under max and min [UN-3]


def _check_scalar(net, name):
    if not isinstance(net, MaxMinNetwork):
        raise TypeError(f"{name} must be a MaxMinNetwork, got {type(net).__name__}")
    if net.n_out != 1:
        raise ValueError(f"{name} must have a scalar output (n_out = 1) for the lattice operations, "
                         f"got n_out = {net.n_out}")


def _duplicate_output(layer):
    """The last layer with its single row written twice: output ``(a, a)``."""
    if isinstance(layer, Select):
        return Select(layer.index[[0, 0]], layer.n_in)
    return Dense(layer.W[[0, 0]], layer.b[[0, 0]])


def deepen(net, depth):
    """The same function as ``net`` (scalar output) with ``depth`` affine layers [UN-3].

    The output ``a`` is written twice, ``(a, a)``, which MaxMin leaves unchanged, and carried by
    selection rows ``e_0`` until the last layer picks it: no weight of norm above 1 is added,
    and the value is carried exactly.
    """
    _check_scalar(net, "net")
    depth = check_int(depth, "depth", minimum=1, maximum=MAX_DEPTH)
    if depth < net.depth:
        raise ValueError(f"depth must be >= the network's depth {net.depth}, got {depth}")
    if depth == net.depth:
        return net
    carry = [Select(np.array([0, 0]), 2)] * (depth - net.depth - 1)
    return MaxMinNetwork((*net.layers[:-1], _duplicate_output(net.layers[-1]), *carry, Select(np.array([0]), 2)))


def _stack(a, b):
    """First layers side by side on the same input: rows of ``a`` then rows of ``b``."""
    if isinstance(a, Select) and isinstance(b, Select):
        return Select(np.concatenate([a.index, b.index]), a.n_in)
    (wa, ba), (wb, bb) = a.dense(), b.dense()
    return Dense(np.concatenate([wa, wb]), np.concatenate([ba, bb]))


def _block_diagonal(a, b):
    """Later layers acting on disjoint parts of the hidden vector: ``diag(A, B)``."""
    if isinstance(a, Select) and isinstance(b, Select):
        return Select(np.concatenate([a.index, b.index + a.n_in]), a.n_in + b.n_in)
    (wa, ba), (wb, bb) = a.dense(), b.dense()
    w = np.zeros((a.n_out + b.n_out, a.n_in + b.n_in))
    w[: a.n_out, : a.n_in] = wa
    w[a.n_out:, a.n_in:] = wb
    return Dense(w, np.concatenate([ba, bb]))


def _lattice2(a, b, pick):
    depth = max(a.depth, b.depth)
    a, b = deepen(a, depth), deepen(b, depth)
    layers = [_stack(a.layers[0], b.layers[0])]
    layers += [_block_diagonal(la, lb) for la, lb in zip(a.layers[1:], b.layers[1:], strict=True)]
    # The last combined layer outputs (F_a, F_b); MaxMin sorts the pair to (min, max).
    layers.append(Select(np.array([pick]), 2))
    return MaxMinNetwork(tuple(layers))


def _lattice(nets, pick, name):
    if len(nets) < 2:
        raise TypeError(f"{name} needs at least two networks, got {len(nets)}")
    for k, net in enumerate(nets):
        _check_scalar(net, f"network {k}")
        if net.n_in != nets[0].n_in:
            raise ValueError(f"network {k} takes {net.n_in} inputs but network 0 takes {nets[0].n_in}")
    nets = list(nets)
    while len(nets) > 1:  # a balanced tree: depth grows by ceil(log2(count))
        nets = [_lattice2(nets[i], nets[i + 1], pick) if i + 1 < len(nets) else nets[i]
                for i in range(0, len(nets), 2)]
    return nets[0]


def lattice_max(*networks):
    """The network computing ``max(F_1(x), ..., F_k(x))`` of scalar MaxMin networks [UN-3].

    Two networks ``a``, ``b`` are deepened to the same depth (:func:`deepen`); the result's
    first layer stacks theirs, every later layer is ``diag(A_k, B_k)``, MaxMin sorts the pair of
    outputs ``(F_a, F_b)`` and a selecting row keeps the maximum. If ``a`` and ``b`` satisfy the
    universality constraints for ``l_p``, so does the result, with depth ``max(depth) + 1`` and
    hidden widths the sums of theirs. More than two networks are combined in a balanced tree.
    """
    return _lattice(networks, 1, "lattice_max")


def lattice_min(*networks):
    """The network computing ``min(F_1(x), ..., F_k(x))``; see :func:`lattice_max` [UN-3]."""
    return _lattice(networks, 0, "lattice_min")


# ----------------------------------------------------------------------------------------------
# Reductions: min / max of many affine functions as one network [UN-8]


def reduction_layers(w, b, stages, *, pad="duplicate"):
    """Layers computing nested minima / maxima of the affine functions ``x -> w_r . x + b_r``.

    Parameters
    ----------
    w, b : arrays (R, n), (R,)
        The first layer's rows, ordered group by group.
    stages : sequence of (op, n_groups)
        ``op`` in {"min", "max"}. At the start of a stage the current values are split into
        ``n_groups`` consecutive groups of equal size, and each group is reduced to one value
        with ``op``; e.g. ``[("min", N), ("max", 1)]`` computes ``max_i min_j`` over ``N``
        groups.
    pad : {"duplicate", "zero"}
        How a group of odd size is made even: by repeating its last value (``(a, a)`` is left
        unchanged by MaxMin and ``min(a, a) = max(a, a) = a``), or by pairing it with the
        constant 0 (correct only for a max of non-negative values; it keeps every selection
        matrix's columns distinct, i.e. its spectral norm 1).

    Each round pairs the values of every group, applies MaxMin and keeps the minima (or maxima)
    by a selection: it is the balanced lattice tree of [UN-3] written level by level. A group of
    ``s`` values needs ``ceil(log2 s)`` rounds.
    """
    w, b = _host_array(w, "w"), _host_array(b, "b")
    for name, a in (("w", w), ("b", b)):
        if not _is_real(a):
            raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"w must be a non-empty (R, n) matrix, got shape {w.shape}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"b must have shape ({w.shape[0]},), one bias per row of w, got {b.shape}")
    w, b = w.astype(np.float64), b.astype(np.float64)
    pad = check_choice(pad, "pad", ("duplicate", "zero"))
    stages = _check_stages(stages)
    layers = []
    pos = np.arange(w.shape[0])
    prev_width = None  # None: the next layer gathers rows of the first layer (w, b)

    def emit(index):
        # Index -1 stands for a zero row (pad="zero"); a layer reading the hidden vector with
        # no zero row is a selection.
        if prev_width is None:
            rows = np.where(index[:, None] >= 0, w[index], 0.0)
            return Dense(rows, np.where(index >= 0, b[index], 0.0))
        if np.all(index >= 0):
            return Select(index, prev_width)
        rows = np.zeros((index.size, prev_width))
        keep = index >= 0
        rows[np.flatnonzero(keep), index[keep]] = 1.0
        return Dense(rows, np.zeros(index.size))

    for op, n_groups in stages:
        if pos.size % n_groups:
            raise ValueError(f"stages: {pos.size} values do not split into {n_groups} equal groups "
                             f"(stage ({op!r}, {n_groups}) needs a number of groups dividing {pos.size})")
        groups = pos.reshape(n_groups, -1)
        while groups.shape[1] > 1:
            padded = groups.shape[1] % 2 == 1
            if padded:
                extra = groups[:, -1:] if pad == "duplicate" else np.full((n_groups, 1), -1)
                groups = np.concatenate([groups, extra], axis=1)
            layers.append(emit(groups.reshape(-1)))
            prev_width = groups.size
            # After MaxMin pair t sits at (2t, 2t + 1) as (min, max). A duplicated pair (a, a)
            # is read at 2t whatever the op, as deepen() carries a value: the network is then
            # exactly the balanced lattice tree of [UN-3] (tests/test_universality.py).
            pick = np.full(groups.shape[1] // 2, int(op == "max"))
            if padded and pad == "duplicate":
                pick[-1] = 0
            groups = (2 * np.arange(groups.size // 2).reshape(n_groups, -1) + pick)
        pos = groups.reshape(-1)
    if pos.size != 1:
        raise ValueError(f"the stages leave {pos.size} values; the last stage must have one group")
    layers.append(emit(pos))
    return MaxMinNetwork(tuple(layers))


def _check_stages(stages):
    """``stages`` as a list of ``(op, n_groups)``: ``op`` in {"min", "max"}, ``n_groups >= 1``."""
    if isinstance(stages, (str, bytes)) or not hasattr(stages, "__iter__"):
        raise TypeError(f"stages must be a sequence of (op, n_groups) pairs, got {type(stages).__name__}")
    out = []
    for k, stage in enumerate(stages):
        if isinstance(stage, (str, bytes)) or not hasattr(stage, "__len__") or len(stage) != 2:
            raise TypeError(f"stages[{k}] must be a pair (op, n_groups), got {stage!r}")
        op = check_choice(stage[0], f"stages[{k}] op", ("min", "max"))
        out.append((op, check_int(stage[1], f"stages[{k}] n_groups", minimum=1)))
    return out


# ----------------------------------------------------------------------------------------------
# Exact norms [UN-5]


def _inv_sqrt2_below():
    """The largest float64 ``r <= 1/sqrt(2)``: then ``2 r^2 <= 1`` exactly, so weights made of
    ``+-r`` have 2-norm <= 1 in exact arithmetic (1/sqrt(2) itself is irrational)."""
    r = math.sqrt(0.5)
    from fractions import Fraction

    # sqrt is correctly rounded, so the answer is fl(sqrt(0.5)) or the float below it. A bounded
    # search: a wrong start or test raises at import instead of stepping ulp by ulp forever.
    for _ in range(2):
        if 2 * Fraction(r) ** 2 <= 1:
            return r
        r = math.nextafter(r, 0.0)
    raise AssertionError(f"no float64 within one ulp below sqrt(0.5) = {math.sqrt(0.5)!r} has 2 r^2 <= 1")


INV_SQRT2 = _inv_sqrt2_below()


def abs_network():
    """``|x|`` for a scalar ``x`` with (semi-)orthonormal weights [UN-5]:
    ``W_1 = (-r, r)^T``, ``W_2 = (-r, r)``, ``r = 1/sqrt(2)``:
    ``MaxMin(-r x, r x) = (-r|x|, r|x|)`` and ``W_2`` of that is ``2 r^2 |x| = |x|``.

    ``||W_1||_2 = ||W_2||_2 = sqrt(2) r = 1``, and the gradient has norm 1 at every ``x != 0``:
    the 2-norm-constrained MaxMin network represents |x|, which no 2-norm-constrained network
    with a monotone element-wise activation does [NR-5]. In float64 ``r`` is the float just
    below ``1/sqrt(2)`` (so the constraint holds exactly for the stored weights) and the output
    is ``|x| (1 - e)`` with ``0 <= e <= 2^-51``, plus the rounding of three operations.
    """
    return norm_network(1, math.inf)


def norm_network(n, ord, *, p=None):
    """A MaxMin network computing ``||x||_ord`` on ``R^n``, ``ord`` in {1, inf} [UN-5].

    Parameters
    ----------
    n : int
        Input dimension.
    ord : 1 or inf
    p : None or 1, 2, inf
        ``None``: every weight has spectral norm ``||W||_2 <= 1`` (the constraint of Theorem 1
        [NR-4]), weights ``+-1/sqrt(2)`` and selections. ``p``: the universality constraints for
        ``l_p`` (``||W_1||_{p,inf} <= 1``, later ``||W_k||_inf <= 1``), weights in {-1, 0, 1}.

    ``||x||_inf = max_k max(x_k, -x_k)`` (rows ``-e_k, e_k``) is 1-Lipschitz in every ``l_p`` and
    is built under every constraint; under the universality constraints it is exact in floating
    point (negation, MaxMin and selections do not round). ``||x||_1 = max_{s in {-1,1}^n} s . x``
    needs first-layer rows ``s`` with ``||s||_q = n^{1/q}``: allowed for ``p = 1`` only (any
    ``p`` when ``n = 1``), which matches its Lipschitz constant ``n^{1 - 1/p}`` in ``l_p``.
    ``2^n`` rows: ``n <= 16``; ``||x||_inf`` stores dense ``(2n, n)`` layers: ``n <= 2048``.

    Raises ``ValueError`` where the constraint does not allow the norm (its Lipschitz constant
    exceeds 1, and every constrained network is 1-Lipschitz [UN-1]).
    """
    # The first layer is a dense (2n, n) matrix, 2n^2 floats: 64 MiB at the bound.
    n = check_int(n, "n", minimum=1, maximum=2048)
    ord = check_p(ord, "ord")
    if ord == 2.0:
        raise ValueError("ord must be 1 or inf: ||x||_2 is not piecewise linear, so no MaxMin network "
                         "(a piecewise linear function) computes it exactly")
    if p is not None:
        p = check_p(p)
    if ord == 1.0 and n > 1:
        if p != 1.0:
            what = "spectral-norm" if p is None else f"l_{p:g} universality"
            raise ValueError(f"||x||_1 on R^{n} has Lipschitz constant {n}^(1/2) or more under the {what} "
                             f"constraints, which only allow 1-Lipschitz networks [UN-1]; use p=1")
        if n > 16:
            raise ValueError(f"||x||_1 needs 2^n first-layer rows; n must be <= 16, got {n}")
    if ord == 1.0 and n > 1:
        signs = np.array(np.meshgrid(*[[1.0, -1.0]] * (n - 1), indexing="ij")).reshape(n - 1, -1).T
        s = np.concatenate([np.ones((signs.shape[0], 1)), signs], axis=1)  # first sign +1
        rows = np.stack([-s, s], axis=1).reshape(-1, n)  # pairs (-s, s): MaxMin gives |s . x| first
    else:
        eye = np.eye(n)
        rows = np.stack([-eye, eye], axis=1).reshape(-1, n)  # pairs (-x_k, x_k)
    if p is not None:
        return reduction_layers(rows, np.zeros(rows.shape[0]), [("max", 1)])
    # Spectral-norm version: W_1 = r [-e_k; e_k] has orthonormal columns (times sqrt(2) r = 1),
    # W_2 = r (-e_{2k} + e_{2k+1}) has orthonormal rows: together |x_k| = 2 r^2 |x_k|.
    r = INV_SQRT2
    first = Dense(r * rows, np.zeros(rows.shape[0]))
    second = np.zeros((n, 2 * n))
    second[np.arange(n), 2 * np.arange(n)] = -r
    second[np.arange(n), 2 * np.arange(n) + 1] = r
    if n == 1:
        return MaxMinNetwork((first, Dense(second, np.zeros(1))))
    # max over the n values |x_k| >= 0: pad with 0 rather than duplicate, so that every
    # selection has distinct columns (a repeated column has norm sqrt(2)).
    if n % 2:
        second = np.concatenate([second, np.zeros((1, 2 * n))])
    tail = reduction_layers(np.eye(second.shape[0]), np.zeros(second.shape[0]), [("max", 1)], pad="zero")
    # The tail's first layer selects from its input; fold it into W_2 (a product of a
    # selection with orthonormal rows keeps orthonormal rows).
    w_sel, b_sel = tail.layers[0].dense()
    head = Dense(w_sel @ second, b_sel)
    return MaxMinNetwork((first, head, *tail.layers[1:]))
