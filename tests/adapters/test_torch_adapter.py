"""The PyTorch adapter on small PyTorch ports (tests/ports/torch_ports.py). CI installs the CPU
build of torch, so these run there; without torch they are skipped."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reflip.adapters import TorchAdapter  # noqa: E402
from reflip.audit import check_implementation  # noqa: E402
from reflip.cli import main  # noqa: E402

from ..ports import torch_ports  # noqa: E402

GS = dict(primitives=["group_sort"])


def test_correct_port_passes_every_check():
    """[GS-1] [GS-2] [GS-4] [GS-5] [GS-7] a stable-sort PyTorch GroupSort passes everything,
    in float32 and float64, VJP and JVP included."""
    report = check_implementation(torch_ports.group_sort_adapter(), **GS)
    assert report.ok, report.to_markdown()
    assert {r.status for r in report.results} == {"pass"}


def test_paper_max_min_with_declared_conventions():
    """[GS-9] [GS-7] the paper code's MaxMin agrees with reflip once its layout and argument
    are declared, except at ties: built on torch's max and min, whose backward both pick the
    first index of a tied pair, it sends both cotangents to one entry (a porting trap of
    shared/PAPER.md), which the tie checks catch."""
    report = check_implementation(torch_ports.paper_max_min_adapter(), shrink=False, **GS)
    failed = {r.claim.id.split(".", 1)[1] for r in report.results if r.status == "fail"}
    assert failed == {"isometry", "isometry_ties", "ties"}, report.to_markdown()
    assert "not a permutation of the cotangent" in report.to_markdown()


def test_paper_max_min_undeclared_is_diagnosed():
    """[GS-9] the comparison with reflip names the undeclared layout and argument."""
    report = check_implementation(torch_ports.paper_max_min_undeclared(), dtypes=["float64"],
                                  checks=["group_sort.matches_reflip"], shrink=False, **GS)
    text = report.to_markdown()
    assert not report.ok
    assert "did you pass the number of groups?" in text or "'maxes_then_mins' layout" in text, text


def test_mask_backward_at_ties_is_caught():
    """[GS-7] a MaxMin whose backward sends a tie's cotangent to both entries (the mask rule)."""

    class MaskMaxMin(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            a, b = x[..., 0::2], x[..., 1::2]
            lo, hi = torch.minimum(a, b), torch.maximum(a, b)
            ctx.save_for_backward(a, b, lo, hi)
            return torch.stack([lo, hi], dim=-1).reshape(x.shape)

        @staticmethod
        def backward(ctx, g):
            a, b, lo, hi = ctx.saved_tensors
            g_lo, g_hi = g[..., 0::2], g[..., 1::2]
            ga = g_lo * (a == lo) + g_hi * (a == hi)
            gb = g_lo * (b == lo) + g_hi * (b == hi)
            return torch.stack([ga, gb], dim=-1).reshape(g.shape)

    def max_min(x, k, axis=-1):
        return MaskMaxMin.apply(x.movedim(axis, -1)).movedim(-1, axis)

    adapter = TorchAdapter(name="mask MaxMin", group_sort=max_min, jvp=False,
                           conventions={"group_sort.group_sizes": [2]})
    report = check_implementation(adapter, dtypes=["float64"], shrink=False,
                                  checks=["group_sort.isometry_ties", "group_sort.ties"], **GS)
    failed = {r.claim.id for r in report.results if r.status == "fail"}
    assert failed == {"group_sort.isometry_ties", "group_sort.ties"}, report.to_markdown()
    assert "every tied entry received the sum of their cotangents" in report.to_markdown()


def test_float32_stays_float32():
    adapter = torch_ports.group_sort_adapter()
    x = np.arange(6, dtype=np.float32)[::-1].copy()
    assert adapter.group_sort(x, 3).dtype == np.float32
    assert adapter.group_sort_vjp(x, np.ones(6, np.float32), 3).dtype == np.float32


def test_adapter_argument_errors():
    with pytest.raises(ValueError, match="no registry primitive named"):
        TorchAdapter(groupsort=lambda x: x)
    with pytest.raises(TypeError, match="must be callable"):
        TorchAdapter(group_sort=3)


def test_cli_on_the_torch_ports(capsys):
    """`reflip audit --impl` on the example adapters, as the porting guide shows it (two checks
    each: the full audits are the tests above)."""
    assert main(["audit", "--impl", "tests.ports.torch_ports:group_sort_adapter", "--primitive", "group_sort",
                 "--dtype", "float32", "--check", "group_sort.sorted_permutation", "group_sort.matches_reflip"]) == 0
    assert "torch group_sort port" in capsys.readouterr().out
    assert main(["audit", "--impl", "tests.ports.torch_ports:bjorck_adapter", "--primitive", "bjorck",
                 "--dtype", "float64", "--check", "bjorck.polar", "bjorck.report"]) == 0
    out = capsys.readouterr().out
    assert "torch Björck port: 2 checks, 1 pass, 1 not applicable" in out


def test_pytest_plugin_on_the_worked_example():
    """The porting guide's pytest command, from the repository root: `--reflip-impl` names
    the Björck port; two of its checks, selected with -k, pass (the suite's module is named
    so that the repository's own tests are not collected too)."""
    from reflip.audit.pytest_plugin import SUITE

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider", "--reflip-impl",
         "tests.ports.torch_ports:bjorck_adapter", "-k", "float64 and (bjorck.polar or bjorck.fd)"],
        cwd=root, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k != "REFLIP_IMPL"})
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "2 passed" in out, out


def test_bjorck_port_passes_every_check():
    """[BJ-3] [BJ-4] [BJ-5] [BJ-6] [BJ-8] the worked Björck example: an order-1 PyTorch port,
    its order and beta declared fixed, passes every check in float32 and float64 (VJP and JVP
    through torch's autograd); the convergence report of reflip's interface is not applicable."""
    report = check_implementation(torch_ports.bjorck_adapter(), primitives=["bjorck"])
    assert report.ok, report.to_markdown()
    statuses = {r.claim.id: r.status for r in report.results}
    assert statuses.pop("bjorck.report") == "not applicable"
    assert set(statuses.values()) == {"pass"}


def test_bjorck_port_detaching_late_iterations_is_diagnosed():
    """[BJ-8] the same port with the cubic term detached from the fifth step on (the memory
    saving of a popular port): the audit fails and names the cause."""

    def detached(w, n_iter, scaling="frobenius"):
        return torch_ports.bjorck(w, n_iter, scaling, detach_from=4)

    adapter = TorchAdapter(name="detaching Björck port", bjorck=detached,
                           conventions={"bjorck.params": {"order": 1, "beta": 0.5}})
    report = check_implementation(adapter, primitives=["bjorck"], dtypes=["float64"], shrink=False,
                                  checks=["bjorck.fd", "bjorck.matches_reflip"])
    assert {r.status for r in report.results} == {"fail"}, report.to_markdown()
    assert "from step 4 on detached" in report.to_markdown()
