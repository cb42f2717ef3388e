"""Small PyTorch ports of the paper's primitives, written the way users write them, to
exercise reflip's audit through :class:`reflip.adapters.TorchAdapter` (and the porting guide's
worked examples). ``group_sort``, ``max_min_paper`` and ``bjorck`` are correct; the adapters
declare their conventions (or, for the ``*_undeclared`` ones, forget to)."""
import math

import torch

from reflip.adapters import TorchAdapter


def group_sort(x, group_size, axis=-1):
    """GroupSort the usual PyTorch way: sort on a (..., n / k, k) view. A stable sort gives
    reflip's tie convention; the gradient is torch's sort backward (a scatter by indices)."""
    x = x.movedim(axis, -1)
    y = torch.sort(x.reshape(*x.shape[:-1], -1, group_size), dim=-1, stable=True).values
    return y.reshape(x.shape).movedim(-1, axis)


def max_min_paper(x, num_units, axis=-1):
    """The paper code's MaxMin: ``num_units`` pairs (the NUMBER of groups), output all maxima
    then all minima."""
    x = x.movedim(axis, -1)
    pairs = x.reshape(*x.shape[:-1], num_units, -1)
    maxes, mins = pairs.max(dim=-1).values, pairs.min(dim=-1).values
    return torch.cat([maxes, mins], dim=-1).movedim(-1, axis)


def group_sort_adapter():
    return TorchAdapter(name="torch group_sort port", group_sort=group_sort)


def paper_max_min_adapter():
    return TorchAdapter(name="paper-code MaxMin port", group_sort=max_min_paper,
                        conventions={"group_sort.layout": "maxes_then_mins", "group_sort.argument": "num_groups"})


def paper_max_min_undeclared():
    return TorchAdapter(name="paper-code MaxMin port, conventions undeclared", group_sort=max_min_paper,
                        conventions={"group_sort.group_sizes": [2]})


def bjorck(w, n_iter, scaling="frobenius", detach_from=None):
    """Order-1 Björck orthonormalization with beta = 1/2, the paper code's step
    ``A <- 1.5 A - 0.5 A (A^T A)``, written the usual PyTorch way: scale, iterate on the tall
    orientation (the smaller Gram matrix), transpose back. Autograd differentiates the
    iterations, which is reflip's ``backward="unrolled"``. ``detach_from=k`` plants a popular
    port's memory saving: the cubic term of every step from the k-th on is detached (a bug)."""
    wide = w.shape[-2] < w.shape[-1]
    a = w.mT if wide else w
    if scaling == "frobenius":
        squares = (a * a).sum(dim=(-2, -1), keepdim=True)
        nonzero = squares > 0
        ones = torch.ones_like(squares)
        # The inner where keeps sqrt's derivative finite at the zero matrix (which stays zero).
        a = a / torch.where(nonzero, torch.sqrt(torch.where(nonzero, squares, ones)), ones)
    elif scaling == "sqrt_mn":
        a = a / math.sqrt(a.shape[-2] * a.shape[-1])
    for k in range(n_iter):
        cubic = a @ (a.mT @ a)
        a = 1.5 * a - 0.5 * (cubic.detach() if detach_from is not None and k >= detach_from else cubic)
    return a.mT if wide else a


def bjorck_adapter():
    """The Björck port: order 1 and beta = 1/2 are the port's constants, declared fixed; it
    takes reflip's ``n_iter`` and ``scaling``."""
    return TorchAdapter(name="torch Björck port", bjorck=bjorck,
                        conventions={"bjorck.params": {"order": 1, "beta": 0.5}})
