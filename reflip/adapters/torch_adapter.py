"""PyTorch adapter: the VJP is ``torch.autograd.grad`` of your function, the JVP
``torch.func.jvp`` (falling back to the double-backward trick of
``torch.autograd.functional.jvp`` for functions without forward-mode formulas)."""
from __future__ import annotations

import numpy as np

from ._base import FrameworkAdapter

__all__ = ["TorchAdapter"]


class TorchAdapter(FrameworkAdapter):
    """Audit PyTorch functions (or ``torch.autograd.Function.apply``) with reflip's suite::

        TorchAdapter(group_sort=lambda x, k, axis=-1: my_group_sort(x, k, dim=axis))

    Tensors are created on the CPU from the suite's NumPy arrays (pass ``device="cuda"`` to
    run the functions on a GPU); float32 stays float32 and float64 float64.
    """

    framework = "torch"

    def __init__(self, name=None, conventions=None, jvp=True, device="cpu", **functions):
        import torch  # noqa: F401  (fail at construction, not at the first check)

        self.device = device
        super().__init__(name, conventions, jvp, **functions)

    def from_numpy(self, a):
        import torch

        # A copy: the suite hands over read-only arrays, which torch.from_numpy rejects.
        return torch.from_numpy(np.array(a)).to(self.device)

    @staticmethod
    def to_numpy(t):
        return t.detach().cpu().numpy()

    @staticmethod
    def vjp(fn, x, y_bar, args, params):
        import torch

        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = fn(x, *args, **params)
            (x_bar,) = torch.autograd.grad(y, x, y_bar, allow_unused=True)
        return torch.zeros_like(x) if x_bar is None else x_bar

    @staticmethod
    def jvp(fn, x, x_dot, args, params):
        import torch

        def f(t):
            return fn(t, *args, **params)

        try:
            return torch.func.jvp(f, (x,), (x_dot,))[1]
        except (RuntimeError, NotImplementedError):
            return torch.autograd.functional.jvp(f, (x,), (x_dot,))[1]
