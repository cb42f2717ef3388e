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
:mod:`~reflip.nn.checks` holds the network checks the tests run.
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
