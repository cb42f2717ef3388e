"""Ready adapters for the Lipschitz libraries people install, by short name::

    reflip audit --impl deel-torchlip
    reflip audit --impl orthogonium
    reflip audit --impl monotonicnetworks
    reflip audit --impl jax-port          # tests/ports/jax_ports.py, from a checkout

Each adapter calls the library's own public functions (nothing is re-implemented here) and
declares the conventions the library documents in its source: what its GroupSort integer
means, its MaxMin layout, its Björck constants, its tie policy. Nothing is declared to make a
check pass: a check that fails is a difference between the library and the paper's claim, and
the published audits (``docs/audits/``, ``python tools/publish_audits.py``) say which.

What the adapters add around a library call, and why it is not a re-implementation:

- **stacks of matrices**: deel-torchlip's Björck and spectral normalization and
  monotonicnetworks' norm rescalings take one weight matrix (a layer's kernel); the suite also
  draws stacks ``(..., m, n)``, which the adapter hands over one matrix at a time.
- **random starts**: the power iterations of deel-torchlip and orthogonium start from
  ``torch.randn``; the adapter seeds it (inside ``torch.random.fork_rng``, so the caller's
  generator is untouched), which makes every case reproducible.
- **modules**: orthogonium's reparametrizers are ``nn.Module`` objects built for a weight
  shape; the adapter builds one per call, converted to the input's dtype with ``.to(dtype)``
  as a user's ``model.double()`` would.

Each library is imported when its adapter is built, so this module imports without them.
"""
from __future__ import annotations

from ..audit.engine import NotSupported
from .torch_adapter import TorchAdapter

__all__ = ["PEERS", "deel_torchlip", "orthogonium", "monotonicnetworks", "library_version", "load_peer"]

#: The seed of the random starts of the libraries' power iterations (see the module docstring).
SEED = 0


def _per_matrix(fn):
    """``fn`` (one matrix -> one matrix) applied to each matrix of a stack ``(..., m, n)``."""

    def mapped(w, *args, **kwargs):
        import torch

        if w.ndim == 2:
            return fn(w, *args, **kwargs)
        flat = w.reshape(-1, *w.shape[-2:])
        return torch.stack([fn(m, *args, **kwargs) for m in flat]).reshape(w.shape)

    return mapped


def _seeded(fn):
    """``fn`` run with torch's generator seeded by :data:`SEED` and restored afterwards."""

    def run(*args, **kwargs):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return fn(*args, **kwargs)

    return run


# -- deel-torchlip ---------------------------------------------------------------------------------

def _deel_group_sort(x, group_size, axis=-1):
    """``deel.torchlip.functional.group_sort(input, group_size, dim)``: the integer is the group
    size; ``dim`` is passed as the suite gives it (torch dims may be negative). The layers
    ``GroupSort(group_size)`` / ``GroupSort2`` call this function with ``dim=1``."""
    from deel.torchlip.functional import group_sort

    return group_sort(x, group_size, dim=axis)


def _deel_bjorck(w, beta=0.5, n_iter=15):
    """``deel.torchlip.normalizers.bjorck_normalization(w, eps, beta, maxiter)``, its step
    tolerance ``eps`` at the library default (``DEFAULT_EPS_BJORCK``); reflip's ``n_iter`` is
    its ``maxiter``."""
    from deel.torchlip.normalizers import bjorck_normalization

    return _per_matrix(bjorck_normalization)(w, beta=beta, maxiter=n_iter)


def _deel_spectral(w, n_iter=10):
    """``deel.torchlip.normalizers.spectral_normalization(kernel, u=None, eps, maxiter)``: the
    normalized kernel (the first of its three results), from the library's random start."""
    from deel.torchlip.normalizers import spectral_normalization

    return _per_matrix(_seeded(lambda m: spectral_normalization(m, None, maxiter=n_iter)[0]))(w)


def deel_torchlip():
    """deel-torchlip: ``functional.group_sort`` (the integer is the group size, ascending
    groups: reflip's layout), ``normalizers.bjorck_normalization`` (order 1, no scaling: the
    library documents that its input must already have a largest singular value near 1) and
    ``normalizers.spectral_normalization``. Its ``MaxMin`` layer is not the paper's MaxMin but
    ``cat(relu(x), relu(-x))`` (Blot et al.), which doubles the width: it is no GroupSort and
    is not audited; ``group_sort(x, 2)`` is the paper's MaxMin."""
    import deel.torchlip  # noqa: F401  (fail here when the library is missing)

    return TorchAdapter(
        name=f"deel-torchlip {library_version('deel-torchlip')}",
        group_sort=_deel_group_sort, bjorck=_deel_bjorck, spectral_normalize=_deel_spectral,
        conventions={"bjorck.params": {"order": 1, "scaling": "none"}})


# -- orthogonium -----------------------------------------------------------------------------------

def _orthogonium_max_min(x, group_size, axis=-1):
    """``orthogonium.layers.custom_activations.MaxMin(axis)``: pairs ``(x_i, x_{i + n/2})``, the
    maxima in the first half of the output (reflip's ``half_split_max_min`` layout)."""
    from orthogonium.layers.custom_activations import MaxMin

    return MaxMin(axis=axis)(x)


def _orthogonium_bjorck(w, beta=0.5, n_iter=12):
    """``orthogonium.reparametrizers.BatchedBjorckOrthogonalization(weight_shape, beta, niters)``
    (its default ``pass_through=False``: every iteration differentiated)."""
    from orthogonium.reparametrizers import BatchedBjorckOrthogonalization

    return BatchedBjorckOrthogonalization(tuple(w.shape), beta=beta, niters=n_iter)(w)


def _orthogonium_spectral(w, n_iter=3):
    """``orthogonium.reparametrizers.BatchedPowerIteration(weight_shape)`` called as
    ``forward(X, n_iters=n_iter)`` from its random start."""
    from orthogonium.reparametrizers import BatchedPowerIteration

    def run(m):
        return BatchedPowerIteration(tuple(m.shape)).to(m.dtype)(m, n_iters=n_iter)

    return _seeded(run)(w)


def orthogonium():
    """orthogonium: ``MaxMin`` (group size 2, half-split layout, the integer unused),
    ``BatchedBjorckOrthogonalization`` (order 1, no scaling: its layers normalize by power
    iteration first) and ``BatchedPowerIteration``."""
    import orthogonium as _lib  # noqa: F401

    return TorchAdapter(
        name=f"orthogonium {library_version('orthogonium')}",
        group_sort=_orthogonium_max_min, bjorck=_orthogonium_bjorck, spectral_normalize=_orthogonium_spectral,
        conventions={"group_sort.layout": "half_split_max_min",
                     "bjorck.params": {"order": 1, "scaling": "none"}})


# -- monotonicnetworks -----------------------------------------------------------------------------

def _monotonic_group_sort(x, n_groups, axis=-1):
    """``monotonicnetworks.group.group_sort(x, n_groups, axis)``: the integer is the number of
    groups."""
    from monotonicnetworks.group import group_sort

    return group_sort(x, n_groups, axis=axis)


#: reflip's ``p`` of :func:`reflip.row_scale` -> monotonicnetworks' ``kind``: ``"inf"`` divides
#: each row by its l1 norm (the ``||W||_inf`` constraint), ``"two-inf"`` by its l2 norm.
_MONOTONIC_KIND = {float("inf"): "inf", 2: "two-inf"}


def _monotonic_row_scale(w, p, radius=1.0):
    """``monotonicnetworks.functional.get_normed_weights(weight, kind, always_norm=False,
    max_norm=radius, vectorwise=True)`` (``direct_norm``'s defaults): rows whose norm exceeds
    ``radius`` are divided by ``norm / radius``. Its other kinds ("one": columns, "one-inf":
    entries) are not a row scaling; ``p = 1`` is reported not supported."""
    from monotonicnetworks.functional import get_normed_weights

    kind = _MONOTONIC_KIND.get(p)
    if kind is None:
        raise NotSupported(f"p = {p} (monotonicnetworks scales rows by their l1 or l2 norm only)")
    # The function takes a weight matrix (rows along the last axis): leading axes are flattened
    # into rows, which a row-wise scaling does not mix.
    rows = w.reshape(1, -1) if w.ndim == 1 else w.reshape(-1, w.shape[-1])
    return get_normed_weights(rows, kind, False, radius, True).reshape(w.shape)


def monotonicnetworks():
    """monotonicnetworks: ``group.group_sort`` (the integer is the NUMBER of groups) and
    ``functional.get_normed_weights`` as the row scaling of :func:`reflip.row_scale`."""
    import monotonicnetworks as _lib  # noqa: F401

    return TorchAdapter(
        name=f"monotonicnetworks {library_version('monotonicnetworks')}",
        group_sort=_monotonic_group_sort, row_scale=_monotonic_row_scale,
        conventions={"group_sort.argument": "num_groups"})


# -- registry --------------------------------------------------------------------------------------

#: Short name -> (adapter factory or "module:attribute" spec, distribution name, primitives).
#: The JAX port is a file of reflip's checkout (tests/ports), found from the current folder.
PEERS = {
    "deel-torchlip": (deel_torchlip, "deel-torchlip", ("group_sort", "bjorck", "spectral_normalize")),
    "orthogonium": (orthogonium, "orthogonium", ("group_sort", "bjorck", "spectral_normalize")),
    "monotonicnetworks": (monotonicnetworks, "monotonicnetworks", ("group_sort", "row_scale")),
    "jax-port": ("tests.ports.jax_ports:jax_port", "jax",
                 ("group_sort", "bjorck", "linf_project")),
}


def library_version(distribution):
    """The installed version of ``distribution`` ("not installed" when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def load_peer(name):
    """The adapter registered as ``name`` in :data:`PEERS` (``KeyError`` when there is none)."""
    factory = PEERS[name][0]
    if isinstance(factory, str):
        import importlib
        import os
        import sys

        module, _, attr = factory.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return getattr(importlib.import_module(module), attr)()
    return factory()

