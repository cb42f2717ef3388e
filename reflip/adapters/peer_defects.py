"""What reflip's audit finds in the libraries of :mod:`reflip.adapters.peers`: each known defect
in plain words, which failed checks it explains, and a self-contained snippet in the library's
own framework that reproduces it without reflip.

The published audits (``docs/audits/``, written by ``python tools/publish_audits.py``) attach
each failed check to the defect that explains it; a failure that no defect explains is listed
as such, never hidden. ``tests/adapters/test_peers.py`` runs every snippet (each ends with an
``assert`` that holds while the defect is there, so a release that fixes it fails the test)
and checks that each library's audit still fails exactly where this catalogue says.

A defect is recognised from the failing case (primitive, check, parameters, the exception an
adapter raised), never from the wording of reflip's diagnosis, which is free to improve.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["Defect", "DEFECTS", "explain"]


@dataclass(frozen=True)
class Defect:
    """One defect of one library.

    ``explains(check_id, params, dtype, error)`` says whether a failed check is this defect's
    doing; ``snippet`` reproduces it in the library's framework and asserts that it is there.
    """

    key: str
    library: str
    primitive: str
    title: str
    cause: str
    snippet: str
    explains: Callable[[str, dict, str, str], bool]


def _raised_dtype_error(error):
    # torch's messages for a float32 operand meeting a float64 one.
    return "float != double" in error or "without narrowing" in error


def _deel_negative_dim(check, params, dtype, error):
    # group_sort.batch_axis calls the function with the axis counted from the end itself.
    return check.startswith("group_sort.") and (params.get("axis", 0) < 0 or "is invalid for input of size" in error)


def _deel_tie_sum(check, params, dtype, error):
    return check in ("group_sort.isometry", "group_sort.isometry_ties", "group_sort.ties") \
        and params.get("axis", 0) >= 0


def _deel_extra_step(check, params, dtype, error):
    return check.startswith("bjorck.") and params.get("n_iter") == 0


def _deel_early_stop(check, params, dtype, error):
    return check in ("bjorck.spectral", "bjorck.spectral_ties", "bjorck.polar", "bjorck.scale_invariance",
                     "bjorck.matches_reflip") and params.get("n_iter", 1) > 0


def _deel_detached(check, params, dtype, error):
    return check == "bjorck.fd" and params.get("n_iter", 0) > 4


def _spectral_float64(check, params, dtype, error):
    return check.startswith("spectral_normalize.") and _raised_dtype_error(error)


def _deel_sigma_eps(check, params, dtype, error):
    return check in ("spectral_normalize.converged", "spectral_normalize.estimate_from_below",
                     "spectral_normalize.constant_uv", "spectral_normalize.matches_reflip") \
        and not _raised_dtype_error(error)


def _orthogonium_average(check, params, dtype, error):
    return check in ("group_sort.isometry", "group_sort.isometry_ties", "group_sort.ties")


def _orthogonium_random_start(check, params, dtype, error):
    return check == "spectral_normalize.matches_reflip" and not _raised_dtype_error(error)


def _jax_port_kink(check, params, dtype, error):
    return check == "linf_project.ties"


def _monotonic_axis(check, params, dtype, error):
    return check.startswith("group_sort.") and params.get("axis", -1) < -1


DEFECTS = [
    Defect(
        "negative-dim", "deel-torchlip", "group_sort",
        "group_sort with a negative dim raises or sorts the wrong axis",
        "`functional.group_sort(x, k, dim)` builds its grouped shape as `shape[:dim] + (n/k, k) + "
        "shape[dim+1:]`, which is right only for `dim >= 0`: `dim=-1` gives a shape of the wrong "
        "size (RuntimeError), and `dim=-2` on a matrix silently groups and sorts along the last axis "
        "instead. The library's layers call it with `dim=1`, which is safe; user code passing a "
        "negative dim, as torch functions allow, gets an error or a wrong result.",
        """import torch
from deel.torchlip.functional import group_sort

x = torch.tensor([[3.0, 1.0], [2.0, 4.0]])
# dim=-2 is dim=0 for a matrix; the library sorts along dim 1 instead
assert not torch.equal(group_sort(x, 2, dim=-2), group_sort(x, 2, dim=0))
try:
    group_sort(torch.tensor([2.0, 1.0]), 2, dim=-1)
    raised = False
except RuntimeError:
    raised = True
assert raised
print("reproduced: group_sort mishandles negative dims")
""", _deel_negative_dim),
    Defect(
        "tie-gradient-summed", "deel-torchlip", "group_sort",
        "GroupSort-2's gradient at a tie sends both cotangents to one entry",
        "For group size 2, `group_sort` takes `torch.min` and `torch.max` along the pair: at a tie "
        "both return the index of the same entry, so the backward pass adds both cotangents there "
        "and gives the other entry nothing. The Jacobian is then not a permutation: gradient norm is "
        "not preserved (GS-5, GS-7) and the gradient is not the one of any sorting order.",
        """import torch
from deel.torchlip.functional import group_sort

x = torch.tensor([0.5, 0.5], requires_grad=True)
(group_sort(x, 2, dim=0) * torch.tensor([1.0, 2.0])).sum().backward()
print("gradient:", x.grad.tolist())  # a permutation of [1, 2] is expected
assert sorted(x.grad.tolist()) != [1.0, 2.0]
print("reproduced: both cotangents reach one tied entry")
""", _deel_tie_sum),
    Defect(
        "bjorck-extra-step", "deel-torchlip", "bjorck",
        "bjorck_normalization runs one step when asked for none",
        "`bjorck_normalization` tests its stopping rule after the loop body (`while not done`), so "
        "`maxiter=0` still takes one Björck step: the result is not the input.",
        """import torch
from deel.torchlip.normalizers import bjorck_normalization

w = torch.tensor([[0.5]], dtype=torch.float64)
out = bjorck_normalization(w, maxiter=0)
print("maxiter=0 returns", out.item(), "for", w.item())
assert not torch.equal(out, w)
print("reproduced: one step at maxiter=0")
""", _deel_extra_step),
    Defect(
        "bjorck-early-stop", "deel-torchlip", "bjorck",
        "bjorck_normalization stops once a step moves W by less than eps = 1e-3",
        "Its default `eps=1e-3` stops the iteration when `||W_{k+1} - W_k||_F < 1e-3`, long before "
        "the result is orthonormal to the working precision: the singular values are left short of 1 "
        "by far more than rounding (1.9e-11 in float64 for the 1 x 1 matrix below, where 50 steps "
        "reach 1 to 1e-16), whatever `maxiter` is. The result is then neither the `maxiter`-step "
        "iterate nor the polar factor (BJ-3, BJ-5, BJ-6).",
        """import torch
from deel.torchlip.normalizers import bjorck_normalization

w = torch.tensor([[-0.225]], dtype=torch.float64)
out = bjorck_normalization(w, maxiter=50)  # 50 steps would reach -1 to rounding
print("|out| - 1 =", abs(out.item()) - 1)
assert abs(abs(out.item()) - 1) > 1e-13
print("reproduced: stopped early on the step size")
""", _deel_early_stop),
    Defect(
        "bjorck-detached", "deel-torchlip", "bjorck",
        "bjorck_normalization's gradient ignores every step from the fifth on",
        "The loop detaches the cubic term `W W^T W` of every step after the first four "
        "(`DEFAULT_BJORK_DETACH = 4`), so autograd differentiates a different function: the "
        "gradient of the weights is wrong by a factor that grows with the number of steps (BJ-8).",
        """import torch
from deel.torchlip.normalizers import bjorck_normalization

w = torch.tensor([[0.3, -0.1, 0.2], [0.1, 0.4, 0.0], [0.0, 0.2, -0.3]], dtype=torch.float64,
                 requires_grad=True)
# eps=0: no early stop, so only the detached steps stand between autograd and the true derivative
four = torch.autograd.gradcheck(lambda a: bjorck_normalization(a, eps=0.0, maxiter=4), (w,),
                                raise_exception=False)
eight = torch.autograd.gradcheck(lambda a: bjorck_normalization(a, eps=0.0, maxiter=8), (w,),
                                 raise_exception=False)
print("gradcheck with 4 steps:", four, "with 8 steps:", eight)
assert four and not eight
print("reproduced: steps after the fourth are not differentiated")
""", _deel_detached),
    Defect(
        "sigma-plus-eps", "deel-torchlip", "spectral_normalize",
        "spectral_normalization divides by sigma + 1e-3, not by sigma",
        "The library divides the kernel by `sigma + eps` with `eps = 1e-3`, on purpose (its comment: "
        "a margin so that Björck's iteration starts strictly inside its basin). The result then has "
        "spectral norm `sigma / (sigma + 1e-3)` < 1, not 1 (PR-11), and its gradient is the "
        "derivative of that function: for a 1 x 1 kernel it is `1e-3 / (|w| + 1e-3)^2`, not 0. A "
        "deliberate design, reported because it breaks the claim that the layer is exactly "
        "norm-preserving (certified margins computed as if it were are off by that factor).",
        """import torch
from deel.torchlip.normalizers import spectral_normalization

torch.manual_seed(0)
out = spectral_normalization(torch.tensor([[-1.0]]))[0]
print("normalized [[-1]]:", out.item())
assert abs(abs(out.item()) - 1) > 1e-4
print("reproduced: the normalized kernel has spectral norm below 1")
""", _deel_sigma_eps),
    Defect(
        "spectral-float64", "deel-torchlip", "spectral_normalize",
        "spectral_normalization fails on float64 kernels",
        "With `u=None` the random start is created as `torch.ones(..., device=kernel.device)`, in "
        "torch's default dtype (float32) rather than the kernel's: a float64 kernel meets a float32 "
        "vector in the first product and torch raises.",
        """import torch
from deel.torchlip.normalizers import spectral_normalization

try:
    spectral_normalization(torch.eye(2, dtype=torch.float64))
    raised = False
except RuntimeError as exc:
    print("RuntimeError:", exc)
    raised = True
assert raised
print("reproduced: float64 kernels are refused")
""", _spectral_float64),
    Defect(
        "tie-gradient-averaged", "orthogonium", "group_sort",
        "MaxMin's gradient at a tie gives each entry the average of the two cotangents",
        "`MaxMin` computes `torch.max(a, b)` and `torch.min(a, b)` elementwise on the two halves; at "
        "a tie torch splits each one's gradient half to each input, so both tied entries receive "
        "`(g1 + g2) / 2`. The Jacobian is not a permutation: the gradient norm shrinks at ties "
        "(GS-5, GS-7).",
        """import torch
from orthogonium.layers.custom_activations import MaxMin

x = torch.tensor([1.0, 1.0], requires_grad=True)
(MaxMin(axis=0)(x) * torch.tensor([1.0, 2.0])).sum().backward()
print("gradient:", x.grad.tolist())  # a permutation of [1, 2] is expected
assert x.grad.tolist() == [1.5, 1.5]
print("reproduced: averaged tie gradient")
""", _orthogonium_average),
    Defect(
        "power-iteration-float64", "orthogonium", "spectral_normalize",
        "BatchedPowerIteration cannot run in float64, even after .double()",
        "Its singular vectors are normalized by an `L2Normalize` parametrization that records the "
        "dtype of the vectors at construction (float32) and passes it to `torch.norm(..., dtype=)`; "
        "`.double()` converts the vectors but not that recorded dtype, and torch refuses to narrow "
        "float64 to float32.",
        """import torch
from orthogonium.reparametrizers import BatchedPowerIteration

try:
    BatchedPowerIteration((2, 2)).double()(torch.eye(2, dtype=torch.float64))
    raised = False
except RuntimeError as exc:
    print("RuntimeError:", exc)
    raised = True
assert raised
print("reproduced: float64 is refused")
""", _spectral_float64),
    Defect(
        "random-start", "orthogonium", "spectral_normalize",
        "BatchedPowerIteration starts from a random vector (a difference, not a defect)",
        "Its singular vectors start from `torch.randn`, reflip's from a fixed vector: after a few "
        "iterations the two estimates of sigma differ (after many they agree, which the passing "
        "`converged` check shows). Nothing is wrong with the library here; reflip has no convention "
        "an adapter could declare for the start, so the comparison with reflip at small `n_iter` "
        "fails. The snippet shows the dependence on the start.",
        """import torch
from orthogonium.reparametrizers import BatchedPowerIteration

x = torch.tensor([[0.25, 1.0], [1.0, 1.0]])


def normalized(seed, n_iters):
    torch.manual_seed(seed)
    return BatchedPowerIteration((2, 2))(x, n_iters=n_iters)


assert not torch.allclose(normalized(0, 1), normalized(1, 1), atol=1e-4)
assert torch.allclose(normalized(0, 50), normalized(1, 50), atol=1e-5)
print("reproduced: after one iteration the result depends on the random start")
""", _orthogonium_random_start),
    Defect(
        "soft-threshold-maximum", "jax-port", "linf_project",
        "the projection's VJP at a kink averages two pieces (jnp.maximum at a tie)",
        "The port's soft threshold `sign(w) * jnp.maximum(|w| - theta, 0)` meets a tie when an "
        "entry sits exactly at the threshold (a kink of the projection). JAX differentiates "
        "`maximum` at a tie as half of each argument's derivative, so the VJP there is the average "
        "of the derivatives of the two pieces, the derivative of neither (PR-4). Writing it as "
        "`jnp.where(|w| > theta, |w| - theta, 0)` picks one piece. Found by the audit in reflip's "
        "own JAX port, kept as the worked example of a JAX trap.",
        """import jax
import jax.numpy as jnp

# The minimal case: w = [0.33203125, -0.08203125], radius 0.25; the threshold theta equals |w_2|.
theta = 0.08203125
slope = jax.grad(lambda a: jnp.maximum(a - theta, 0.0))(0.08203125)
print("d/da max(a - theta, 0) at a = theta:", float(slope))  # 0 or 1 on either piece
assert float(slope) == 0.5
print("reproduced: jnp.maximum splits the derivative at the kink")
""", _jax_port_kink),
    Defect(
        "negative-axis", "monotonicnetworks", "group_sort",
        "group_sort with a negative axis other than -1 sorts the wrong axis",
        "`group_sort(x, n_groups, axis)` inserts the group axis at `axis + 1` and sorts along "
        "`axis + 1`: right for `axis >= 0` and for `-1`, but for `axis = -2, -3, ...` the sort runs "
        "along the axis after the intended one. The result is silently wrong (not sorted groups, "
        "not the function the layer claims).",
        """import torch
from monotonicnetworks.group import group_sort

x = torch.tensor([[3.0, 1.0], [2.0, 4.0]])
# axis=-2 is axis 0 of a matrix: one group of the two rows in each column
print(group_sort(x, 1, axis=0).tolist(), group_sort(x, 1, axis=-2).tolist())
assert not torch.equal(group_sort(x, 1, axis=-2), group_sort(x, 1, axis=0))
print("reproduced: axis=-2 sorts the last axis")
""", _monotonic_axis),
]


def explain(library, result):
    """The defect of ``library`` that explains a failed check (``None``: none does)."""
    case = result.counterexample
    params = dict(case.params) if case is not None else {}
    for defect in DEFECTS:
        if defect.library == library and defect.primitive == result.claim.primitive \
                and defect.explains(result.claim.id, params, result.dtype, result.error or ""):
            return defect
    return None
