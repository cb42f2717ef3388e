"""Small PyTorch ports of the paper's primitives, written the way users write them, to
exercise reflip's audit through :class:`reflip.adapters.TorchAdapter` (and the porting guide's
worked example). ``group_sort`` and ``max_min_paper`` are correct; the adapters at the bottom
declare their conventions (or, for the ``*_undeclared`` ones, forget to)."""
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
