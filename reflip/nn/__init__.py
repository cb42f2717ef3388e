"""Lipschitz networks in functional style, on any array-API backend (NumPy, CuPy).

A model is a description plus its parameters::

    import numpy as np
    from reflip import nn

    model = nn.Sequential([
        nn.Dense(784, 1024, constraint="bjorck"), nn.Activation("max_min"),
        nn.Dense(1024, 10, constraint="bjorck"), nn.Scale(2.0),
    ])
    params = model.init(seed=0, xp=np, dtype="float64")   # list of dicts {"W", "b"}
    y, residuals = model.forward(params, x)                # x: (batch, 784)
    x_bar, grads = model.backward(residuals, y_bar)        # grads shaped like params

The backward pass chains the registry primitives' hand-written VJPs [NN-1] [NN-2]. Submodules:
:mod:`~reflip.nn.losses`, :mod:`~reflip.nn.optim`, :mod:`~reflip.nn.train`,
:mod:`~reflip.nn.lipschitz`, :mod:`~reflip.nn.certify`, :mod:`~reflip.nn.io`;
:mod:`reflip.testing.nn_checks` holds the network checks the tests run.

Bad input [NN-11]: a wrong type raises ``TypeError``, a wrong value ``ValueError``, each naming
the parameter; arrays are float32 or float64 (labels and output indices: integer arrays).
NaN [NN-14]: propagated, never hidden. A row of ``x`` holding NaN gives an all-NaN output row,
and NaN in every per-row quantity derived from it (input gradients, Jacobians, their norms,
local Lipschitz constants, pair ratios, margins, certified radii); such a row is neither
correct nor certified. Aggregates over rows (``gradient_lower_bound``, ``pair_lower_bound``,
``unit_activity``, ``describe``, losses) are NaN when a row is. ``train.fit`` stops on NaN data
with a ``ValueError`` naming the data.
"""
from . import attack, certify, io, lipschitz, losses, optim, train
from .io import load, load_model, save
from .layers import ACTIVATIONS, CONSTRAINTS, Activation, Dense, Layer, Scale
from .model import Sequential, SequentialResiduals

__all__ = [
    "Activation",
    "ACTIVATIONS",
    "CONSTRAINTS",
    "Dense",
    "Layer",
    "Scale",
    "Sequential",
    "SequentialResiduals",
    "save",
    "load",
    "load_model",
    "attack",
    "certify",
    "io",
    "lipschitz",
    "losses",
    "optim",
    "train",
]
