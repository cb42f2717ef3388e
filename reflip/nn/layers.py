"""Layers of Lipschitz networks: a layer object holds hyper-parameters only; its parameters are
a plain ``dict`` of arrays, its derivative the registry primitives' hand-written VJPs chained
by hand [NN-1].

Every layer maps a batch ``x`` of shape ``(batch, width)`` and has::

    init     :: (numpy Generator, xp, dtype) -> params dict
    forward  :: (params, x, xp) -> (y, residuals)
    backward :: (residuals, y_bar, xp, input_only) -> (x_bar, param_grads dict or None)
    apply    :: (params, x, xp) -> y             # forward without residuals

:class:`Dense` applies a weight constraint in the forward path, ``W_eff = c(W)``, and pulls the
cotangent of ``W_eff`` back through ``c``'s VJP [NN-1]; :class:`Activation` wraps GroupSort /
MaxMin / FullSort [GS-1], ReLU and abs; :class:`Scale` multiplies by a fixed ``L > 0`` (an
``L``-Lipschitz output scale). Widths are checked when a :class:`~reflip.nn.Sequential` is built
[NN-11].
"""
from __future__ import annotations

import inspect
import math
import warnings
from typing import NamedTuple

import array_api_compat.numpy as _npx
import numpy as np

from .._backend import get_namespace, haar_orthogonal
from .._registry import REGISTRY  # filled by reflip/__init__, imported before this package
from .._validate import MAX_ITERATIONS, check_bool, check_choice, check_int, check_real
from ..bjorck import ON_NONCONVERGENCE as _BJORCK_ON_NONCONVERGENCE
from ..bjorck import BjorckConvergenceError, BjorckConvergenceWarning
from ..groupsort import group_sort, group_sort_bwd, group_sort_fwd
from ..norms import check_p, operator_norm

__all__ = ["Layer", "Dense", "Activation", "Scale", "CONSTRAINTS", "ACTIVATIONS", "INITS", "MAX_PARAMETERS"]

CONSTRAINTS = ("bjorck", "polar", "linf", "pinf", "spectral", "unit_row", "none")
ACTIVATIONS = ("group_sort", "max_min", "full_sort", "relu", "abs")
INITS = ("orthogonal", "normal")

#: Upper bound of the number of entries of one weight, ``in_features * out_features``. A
#: weight of 2^31 float32 entries takes 8 GiB (16 GiB in float64) and its dimensions already
#: reach the 32-bit indices of LP64 BLAS and of most GPU kernels; a larger layer is a typo
#: (``Dense(10**30, 1)``), which NumPy would otherwise report only when ``init`` allocates.
MAX_PARAMETERS = 2**31

# Constraints with a registry primitive: W_eff = fun(W, **options), VJP = bwd(residuals, .).
_PRIMITIVES = {"bjorck": "bjorck", "polar": "polar", "linf": "linf_project", "pinf": "pinf_project",
               "spectral": "spectral_normalize"}


def _options_of(constraint):
    """The options a constraint takes: every argument of its primitive's ``fwd`` after the
    weight (so new primitive options reach Dense without an edit here)."""
    if constraint not in _PRIMITIVES:
        return ()
    names = tuple(inspect.signature(REGISTRY[_PRIMITIVES[constraint]].fwd).parameters)[1:]
    # The power iteration's start vector u is state, not a hyper-parameter: every forward pass
    # starts from the deterministic default and iterates to tol [PR-11].
    return tuple(n for n in names if n != "u")


class Layer:
    """Base class: a layer without parameters (``init`` returns ``{}``)."""

    def init(self, rng, xp, dtype):
        return {}

    def param_shapes(self):
        """``{name: shape}`` of the parameters (checked by :class:`~reflip.nn.Sequential`)."""
        return {}

    def output_width(self, width, position):
        """Width after this layer given the input ``width`` (``None``: not known yet);
        raises ``ValueError`` when the layer cannot follow that width [NN-11]."""
        return width

    def lipschitz(self, params, p, q):
        """Upper bound on the layer's Lipschitz constant from ``(R^n, l_p)`` to ``(R^m, l_q)``
        [NN-3]; a Python float."""
        raise NotImplementedError

    def config(self):
        """The constructor's arguments, JSON-serialisable (used by :func:`reflip.nn.save`)."""
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------
# Dense


class DenseResiduals(NamedTuple):
    """``x``: the layer input; ``w_eff``: the constrained weight; ``constraint``: the
    constraint primitive's residuals (``None`` for ``"none"``)."""

    x: object
    w_eff: object
    constraint: object


class _UnitRowResiduals(NamedTuple):
    norm: object
    w_eff: object


class Dense(Layer):
    """Affine layer ``y = x W_eff^T + b`` with ``W_eff = c(W)`` a weight constraint applied in
    the forward path [NN-1].

    Parameters
    ----------
    in_features, out_features : int >= 1
        ``W`` has shape ``(out_features, in_features)``, ``b`` shape ``(out_features,)``; at
        most :data:`MAX_PARAMETERS` (2^31) entries, ``in_features * out_features`` (larger
        is a typo that would fail only when ``init`` allocates) [NN-11].
    constraint : {"bjorck", "polar", "linf", "pinf", "spectral", "unit_row", "none"}, default "none"
        ``"bjorck"``: ``W_eff = bjorck(W, ...)``, (semi-)orthonormal, ``||W_eff||_2 = 1`` once
        converged [BJ-1]. ``"polar"``: ``W_eff = polar(W, ...)``, the same limit by the
        optimal-polynomial schedule, ``||W_eff||_2 <= 1 + safety_bound`` after any number of
        steps [PO-3]; options those of :func:`reflip.polar_fwd`, ``on_nonconvergence`` as
        for ``"bjorck"``. ``"linf"``: every row projected onto the l1 ball,
        ``||W_eff||_inf <= radius`` [PR-1]. ``"pinf"``: every row in the ``l_q`` ball
        (``1/p + 1/q = 1``), ``||W_eff||_{p,inf} <= radius`` [PR-7]; first Dense layer only
        [NN-11]. ``"spectral"``: ``W / sigma_max`` by power iteration [PR-11].
        ``"unit_row"``: ``W / ||W||_2`` for a single output row (scalar critics: a unit-norm
        last row) [NN-5]. ``"none"``: ``W_eff = W`` (the same array).
    bias : bool, default True
    init : {"orthogonal", "normal"}, default "orthogonal"
        Orthogonal rows or columns [NN-12], or i.i.d. ``N(0, 1/in_features)``; biases start at 0.
    **options
        Keyword arguments of the constraint's primitive (after the weight): ``"bjorck"``:
        those of :func:`reflip.bjorck_fwd` (``order, beta, n_iter, tol, scaling, backward``
        ``"unrolled"``/``"implicit"``, ``checkpoint``...; ``on_nonconvergence`` defaults to
        ``"ignore"`` here: training under-iterates on purpose and the bounds use the exact
        norm of ``W_eff`` [NN-3]); ``"linf"``: ``radius, threshold``
        (``"exact"`` Jacobian of the projection or ``"detached"`` threshold [PR-4] [PR-5]);
        ``"pinf"``: ``p`` (required: 1, 2 or ``math.inf``), ``radius``; ``"spectral"``:
        ``n_iter, tol, convention`` (each forward pass starts the power iteration afresh).
        Invalid values raise here, with the primitive's message; iteration counts
        (``n_iter``) are bounded by :data:`reflip._validate.MAX_ITERATIONS` before anything
        runs.

    Raises
    ------
    TypeError
        A non-integer feature count (``Dense(2.0, 3)``), a non-bool ``bias``, an option of the
        wrong type or one the constraint does not take.
    ValueError
        A value out of range, named [NN-11].
    """

    def __init__(self, in_features, out_features, constraint="none", *, bias=True,
                 init="orthogonal", **options):
        self.in_features = check_int(in_features, "in_features", minimum=1, maximum=MAX_PARAMETERS)
        self.out_features = check_int(out_features, "out_features", minimum=1, maximum=MAX_PARAMETERS)
        if self.in_features * self.out_features > MAX_PARAMETERS:
            raise ValueError(f"in_features * out_features must be <= {MAX_PARAMETERS} (MAX_PARAMETERS, the "
                             f"entries of one weight), got {self.in_features} * {self.out_features} = "
                             f"{self.in_features * self.out_features}")
        self.constraint = check_choice(constraint, "constraint", CONSTRAINTS)
        self.bias = check_bool(bias, "bias")
        self.init_method = check_choice(init, "init", INITS)
        self.options = self._check_options(dict(options))

    def _check_options(self, options):
        allowed = _options_of(self.constraint)
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(f"Dense(constraint={self.constraint!r}) got unexpected option(s) {unknown}; "
                            f"its options are {list(allowed) or 'none'}")
        if self.constraint == "pinf" and "p" not in options:
            raise TypeError("Dense(constraint='pinf') needs the option p (1, 2 or math.inf): the "
                            "input norm of the network, rows of W_eff go to the dual-norm ball [PR-7]")
        if self.constraint == "pinf":
            options["p"] = check_p(options["p"])
        if (self.constraint in ("bjorck", "polar") and "on_nonconvergence" not in options
                and "ignore" in _BJORCK_ON_NONCONVERGENCE):
            # Training runs few Björck iterations on purpose (the paper's code: 10-25, more at
            # test time), and every certificate uses the exact norm of W_eff [NN-3], so an
            # unconverged W_eff is never trusted silently: no warning at every forward pass.
            # Recorded in the options (repr, config) and overridable: on_nonconvergence="warn".
            options["on_nonconvergence"] = "ignore"
        if "n_iter" in options:
            # Bounded before the probe below runs the iteration: n_iter=10**30 would otherwise
            # hang the construction of the model (the primitive checks the lower bound).
            options["n_iter"] = check_int(options["n_iter"], "n_iter", maximum=MAX_ITERATIONS)
        if self.constraint == "unit_row" and self.out_features != 1:
            raise ValueError(f"constraint='unit_row' needs out_features=1 (a unit-norm last row of a "
                             f"scalar critic), got out_features={self.out_features}; use 'bjorck' for "
                             f"orthonormal rows")
        # The primitive validates its own arguments: run it once on a 2 x 2 float64 NumPy
        # identity so that a bad option fails here, at model construction, with the primitive's
        # message. "precision" depends on the backend and dtype of the weights: it is checked
        # by the first forward pass instead.
        probe = {k: v for k, v in options.items() if k != "precision"}
        with warnings.catch_warnings():
            # Whether the probe converges says nothing about the weights to come: only the
            # argument checks count here (on_nonconvergence="warn"/"raise" apply to real runs).
            warnings.simplefilter("ignore", BjorckConvergenceWarning)
            try:
                _constraint_fwd(self.constraint, probe, np.eye(2), _npx)
            except BjorckConvergenceError:
                pass
        # NumPy scalars (radius=np.float32(2.0)) are stored as Python numbers, exactly: the
        # config is then JSON (nn.save) and the repr the constructor call.
        return {k: v.item() if isinstance(v, np.generic) else v for k, v in options.items()}

    # -- parameters
    def param_shapes(self):
        shapes = {"W": (self.out_features, self.in_features)}
        if self.bias:
            shapes["b"] = (self.out_features,)
        return shapes

    def init(self, rng, xp, dtype):
        shape = (self.out_features, self.in_features)
        if self.init_method == "orthogonal":
            w = haar_orthogonal(rng, *shape)  # [NN-12]
        else:
            w = rng.standard_normal(shape) / math.sqrt(self.in_features)
        params = {"W": xp.asarray(w, dtype=dtype)}
        if self.bias:
            params["b"] = xp.zeros((self.out_features,), dtype=dtype)
        return params

    def output_width(self, width, position):
        if width is not None and width != self.in_features:
            raise ValueError(f"layer {position}: {self!r} expects {self.in_features} input features but the "
                             f"previous layers output {width}")
        return self.out_features

    def effective_weight(self, params, xp):
        """``W_eff = c(W)`` (the same array as ``params["W"]`` for ``"none"``); no residuals."""
        w = params["W"]
        if self.constraint in _PRIMITIVES:
            return REGISTRY[_PRIMITIVES[self.constraint]].fun(w, **self.options)
        return _constraint_fwd(self.constraint, self.options, w, xp)[0]

    # -- forward / backward [NN-1]
    def forward(self, params, x, xp):
        w_eff, residuals = _constraint_fwd(self.constraint, self.options, params["W"], xp)
        y = x @ w_eff.T
        if self.bias:
            y = y + params["b"]
        return y, DenseResiduals(x, w_eff, residuals)

    def apply(self, params, x, xp):
        y = x @ self.effective_weight(params, xp).T
        return y + params["b"] if self.bias else y

    def backward(self, residuals, y_bar, xp, input_only=False):
        # y = x W_eff^T + b: x_bar = y_bar W_eff, W_eff_bar = y_bar^T x, b_bar = 1^T y_bar,
        # then W_bar = J_c(W)^T W_eff_bar through the constraint's VJP [NN-1].
        x_bar = y_bar @ residuals.w_eff
        if input_only:
            return x_bar, None
        grads = {"W": _constraint_bwd(self.constraint, residuals.constraint, y_bar.T @ residuals.x, xp)}
        if self.bias:
            grads["b"] = xp.sum(y_bar, axis=0)
        return x_bar, grads

    def lipschitz(self, params, p, q):
        return operator_norm(self.effective_weight(params, get_namespace(params["W"])), p, q)

    def config(self):
        return {"type": "Dense", "in_features": self.in_features, "out_features": self.out_features,
                "constraint": self.constraint, "bias": self.bias, "init": self.init_method, **self.options}

    def __repr__(self):
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        bias = "" if self.bias else ", bias=False"
        return f"Dense({self.in_features}, {self.out_features}, constraint={self.constraint!r}{bias}{opts})"


def _constraint_fwd(constraint, options, w, xp):
    """``(W_eff, residuals)`` of a constraint [NN-1]."""
    if constraint in _PRIMITIVES:
        return REGISTRY[_PRIMITIVES[constraint]].fwd(w, **options)
    if constraint == "unit_row":
        norm = xp.linalg.vector_norm(w, axis=-1, keepdims=True)
        if not bool(xp.all(norm > 0)):
            raise ValueError("constraint='unit_row': the weight row is zero, it has no direction")
        w_eff = w / norm
        return w_eff, _UnitRowResiduals(norm, w_eff)
    return w, None


def _constraint_bwd(constraint, residuals, w_eff_bar, xp):
    """``W_bar = J_c(W)^T W_eff_bar`` [NN-1]."""
    if constraint in _PRIMITIVES:
        return REGISTRY[_PRIMITIVES[constraint]].bwd(residuals, w_eff_bar)
    if constraint == "unit_row":
        # W_eff = W / ||W||: W_bar = (W_eff_bar - W_eff <W_eff, W_eff_bar>) / ||W|| [NN-1].
        norm, w_eff = residuals
        return (w_eff_bar - w_eff * xp.sum(w_eff * w_eff_bar, axis=-1, keepdims=True)) / norm
    return w_eff_bar


# ----------------------------------------------------------------------------------------------
# Activations


class _MaskResiduals(NamedTuple):
    """ReLU: the 0/1 derivative ``x > 0``; abs: ``sign(x)`` (0 at 0, the convention at the
    kink) [NN-6]."""

    derivative: object


class Activation(Layer):
    """Element-wise or group-wise activation, 1-Lipschitz in every l_p norm [GS-2] [NN-3].

    Parameters
    ----------
    name : {"group_sort", "max_min", "full_sort", "relu", "abs"}
        ``"group_sort"`` sorts contiguous groups of ``group_size`` ascending [GS-1];
        ``"max_min"`` is group size 2, pairs ``(a, b) -> (min, max)`` [GS-6]; ``"full_sort"``
        sorts the whole feature axis; ``"relu"``: ``max(x, 0)`` (derivative 0 at 0);
        ``"abs"``: ``|x|`` (derivative ``sign(x)``, 0 at 0).
    group_size : int, required for (and only for) ``"group_sort"``
        Must divide the width, checked when the model is built [NN-11].
    """

    def __init__(self, name, group_size=None):
        check_choice(name, "name", ACTIVATIONS)
        if name == "group_sort":
            if group_size is None:
                raise TypeError("Activation('group_sort') needs group_size (the size k of the sorted groups)")
            # The width bound of MAX_PARAMETERS holds for groups too: a larger group divides no width.
            group_size = check_int(group_size, "group_size", minimum=1, maximum=MAX_PARAMETERS)
        elif group_size is not None:
            raise TypeError(f"group_size applies to 'group_sort' only, got group_size={group_size!r} "
                            f"for {name!r}")
        self.name, self.group_size = name, group_size

    def _k(self, width):
        return {"group_sort": self.group_size, "max_min": 2, "full_sort": width}.get(self.name)

    def output_width(self, width, position):
        k = self._k(width) if width is not None else None
        if k is not None and width % k:
            raise ValueError(f"layer {position}: {self!r} needs a width divisible by its group size {k}, "
                             f"got width {width}")
        return width

    def forward(self, params, x, xp):
        if self.name == "relu":
            d = xp.astype(x > 0, x.dtype)
        elif self.name == "abs":
            d = xp.sign(x)
        else:
            return group_sort_fwd(x, self._k(x.shape[-1]))
        return x * d, _MaskResiduals(d)

    def apply(self, params, x, xp):
        if self.name == "relu":
            return xp.maximum(x, xp.zeros_like(x))
        if self.name == "abs":
            return xp.abs(x)
        return group_sort(x, self._k(x.shape[-1]))

    def backward(self, residuals, y_bar, xp, input_only=False):
        grads = None if input_only else {}
        if isinstance(residuals, _MaskResiduals):
            return y_bar * residuals.derivative, grads
        return group_sort_bwd(residuals, y_bar), grads  # a permutation of y_bar [GS-4]

    def lipschitz(self, params, p, q):
        return 1.0  # [GS-2]; ReLU and abs are 1-Lipschitz per coordinate [NN-3]

    def config(self):
        cfg = {"type": "Activation", "name": self.name}
        if self.group_size is not None:
            cfg["group_size"] = self.group_size
        return cfg

    def __repr__(self):
        return f"Activation({self.name!r}" + (f", group_size={self.group_size})" if self.group_size else ")")


# ----------------------------------------------------------------------------------------------
# Scale


class Scale(Layer):
    """``y = L x``: makes a 1-Lipschitz network ``L``-Lipschitz (the paper's robust classifiers
    scale the logits before the hinge loss) [NN-3].

    Parameters
    ----------
    factor : float
        ``L``, finite and > 0.
    """

    def __init__(self, factor):
        self.factor = check_real(factor, "factor", minimum=0.0, strict=True)

    def forward(self, params, x, xp):
        return x * self.factor, None

    def apply(self, params, x, xp):
        return x * self.factor

    def backward(self, residuals, y_bar, xp, input_only=False):
        return y_bar * self.factor, None if input_only else {}

    def lipschitz(self, params, p, q):
        return self.factor

    def config(self):
        return {"type": "Scale", "factor": self.factor}

    def __repr__(self):
        return f"Scale({self.factor!r})"


LAYER_TYPES = {"Dense": Dense, "Activation": Activation, "Scale": Scale}
