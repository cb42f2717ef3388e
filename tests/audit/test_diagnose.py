"""The audit's diagnoses on the situations where they misfired on real libraries (issue 16,
item 4), each reproduced by a port in tests/ports/misfire_ports.py, and the report's figures
and notes."""
import numpy as np
import pytest

from reflip.audit import check_implementation
from reflip.audit.engine import _user_notes

torch = pytest.importorskip("torch")
from tests.ports import misfire_ports as ports  # noqa: E402

F64 = dict(dtypes=["float64"])


def _result(report, check):
    (result,) = [r for r in report.results if r.claim.id == check]
    return result


def test_averaged_tie_gradients_are_named():
    """[GS-5] [GS-7] (c) a half-split MaxMin on torch.maximum / torch.minimum gives each tied entry
    (g1 + g2) / 2: the isometry fails and the failure names the averaging, not only "not a
    permutation"."""
    report = check_implementation(ports.half_split_adapter(), primitives=["group_sort"],
                                  checks=["group_sort.isometry_ties"], **F64)
    result = _result(report, "group_sort.isometry_ties")
    assert result.status == "fail"
    assert "AVERAGE of their cotangents, (g1 + g2) / 2" in result.error
    assert "torch.maximum / torch.minimum" in result.error


def test_failed_check_reports_the_failing_case_figures():
    """(d) the figures column of a failed check shows the failing case's (a norm change > 0),
    not the worst over the cases that passed (0)."""
    report = check_implementation(ports.half_split_adapter(), primitives=["group_sort"],
                                  checks=["group_sort.isometry_ties"], **F64)
    result = _result(report, "group_sort.isometry_ties")
    assert result.failing_figures["norm_change_l2"] > 1e-3
    row = next(line for line in report.to_markdown().splitlines() if "group_sort.isometry_ties:" in line)
    assert "failing case: " in row and "norm_change_l2=0," not in row, row


def test_hypothesis_explanation_is_dropped():
    """(e) hypothesis's "Explanation: lines always run by failing cases" (reflip's harness lines)
    never reaches a report; the reproduction notes do."""
    notes = ["Failing test case: holds(case=...)", "Explanation:",
             "    These lines were always and only run by failing test cases:",
             "        /reflip/audit/groupsort.py:88", "        (and 3 more with settings.verbosity >= verbose)",
             "Minimal case kept"]
    assert _user_notes(notes) == ["Failing test case: holds(case=...)", "Minimal case kept"]
    report = check_implementation(ports.half_split_adapter(), primitives=["group_sort"],
                                  checks=["group_sort.isometry_ties"], **F64)
    assert "Explanation" not in report.to_markdown()
    assert "always and only run" not in report.to_markdown()


def test_declared_detached_threshold_is_checked_against_its_derivative():
    """[PR-4] [PR-5] [AU-4] (a) reflip's own projection with threshold='detached', declared, passes the
    derivative checks (central differences of the projection with its threshold held constant);
    an exact VJP declared 'detached' fails them."""
    for dtype in ("float32", "float64"):
        report = check_implementation(ports.DetachedProjection(), primitives=["linf_project"], dtypes=[dtype],
                                      checks=["linf_project.fd", "linf_project.ties", "linf_project.matches_reflip"])
        assert report.ok and report.checked == 3, report.to_markdown()

    class ExactDeclaredDetached(ports.DetachedProjection):
        name = "exact VJP declared detached"

        def linf_project_vjp(self, w, y_bar, radius=1.0):
            from reflip._registry import REGISTRY

            record = REGISTRY["linf_project"]
            return record.bwd(record.fwd(w, radius=radius)[1], y_bar)

    report = check_implementation(ExactDeclaredDetached(), primitives=["linf_project"], checks=["linf_project.fd"],
                                  shrink=False, **F64)
    result = _result(report, "linf_project.fd")
    assert result.status == "fail" and "declared derivative" in result.error, result.error


def test_axis_error_names_the_axis_convention():
    """[GS-10] (f) a GroupSort written for NCHW activations (sorts dim 1 whatever `axis` says)
    raises torch's IndexError on 1-d inputs: every failure names the axis it sorts along."""
    report = check_implementation(ports.channel_adapter(), primitives=["group_sort"], shrink=False,
                                  checks=["group_sort.sorted_permutation", "group_sort.matches_reflip"], **F64)
    for result in report.results:
        assert result.status == "fail"
        assert "IndexError" in result.error and "sorts along axis 1 whatever `axis` says" in result.error, result.error


def test_last_axis_only_names_the_declaration():
    """[GS-10] (f) an adapter that raises for any axis but the last is told to declare
    group_sort.axis = 'last'; declared, it passes."""

    class LastOnly:
        name = "last axis only"
        conventions = {}

        def group_sort(self, x, k, axis=-1):
            if axis not in (-1, x.ndim - 1):
                raise IndexError("Dimension out of range")
            y = np.sort(x.reshape(*x.shape[:-1], -1, k), axis=-1)
            return y.reshape(x.shape)

    report = check_implementation(LastOnly(), primitives=["group_sort"], shrink=False,
                                  checks=["group_sort.sorted_permutation"], **F64)
    assert "declare conventions['group_sort.axis'] = 'last'" in report.results[0].error
    declared = LastOnly()
    declared.conventions = {"group_sort.axis": "last"}
    assert check_implementation(declared, primitives=["group_sort"], checks=["group_sort.sorted_permutation"], **F64).ok


def _bjorck_case(impl, n_iter, scaling="frobenius"):
    from reflip.testing.strategies.common import Case

    w = np.random.default_rng(0).standard_normal((5, 3))
    return Case(x=w, params=impl.params_for("bjorck", {"n_iter": n_iter, "scaling": scaling}))


def _numpy_backend():
    from reflip.testing.backends import available_backends

    (backend,) = available_backends(("numpy",))
    return backend


def test_bjorck_forward_and_vjp_diagnoses_are_separate():
    """[BJ-3] [BJ-8] (b) a loop of max(n_iter, 1) steps with late steps detached: at n_iter = 0
    the forward differs and its cause is the extra step (never the VJP's detached steps); at
    n_iter = 13 the forward agrees and the VJP's cause is named."""
    from reflip.audit.adapter import AdapterImpl

    impl = AdapterImpl(ports.at_least_one_adapter(), "bjorck")
    backend = _numpy_backend()
    forward = impl.diagnose(_bjorck_case(impl, 0), backend, "float64", part="forward")
    assert "always runs at least one step" in forward and "detached" not in forward, forward
    vjp = impl.diagnose(_bjorck_case(impl, 13), backend, "float64", part="vjp")
    assert "from step 4 on detached" in vjp, vjp
    assert impl.diagnose(_bjorck_case(impl, 13), backend, "float64", part="forward") == ""


def test_bjorck_early_stop_on_step_size_is_named():
    """[BJ-3] (b) a loop stopping once a step moves the iterate by < 1e-3 returns an earlier
    iterate: the forward's cause is the early stop, in matches_reflip and in the spectral claim."""
    from reflip.audit.adapter import AdapterImpl
    from reflip.audit.bjorck import _check_spectral
    from reflip.audit.engine import ClaimFailure

    impl = AdapterImpl(ports.step_tolerance_adapter(), "bjorck")
    case = _bjorck_case(impl, 15)
    forward = impl.diagnose(case, _numpy_backend(), "float64", part="forward")
    assert "stopped early; an early stop on the step size" in forward and "detached" not in forward, forward
    with pytest.raises(ClaimFailure, match="returned iterate 10 of n_iter = 15: it stopped early"):
        _check_spectral(impl, case, _numpy_backend(), "float64")


def test_bjorck_step_at_n_iter_zero_is_named_by_the_spectral_claim():
    """[BJ-3] (g) a Björck that always runs one step fails the spectral claim at n_iter = 0 with
    the cause named, in a whole audit as in the check."""
    report = check_implementation(ports.at_least_one_adapter(), primitives=["bjorck"], checks=["bjorck.spectral"],
                                  shrink=False, **F64)
    (result,) = report.results
    assert result.status == "fail"
    assert "at n_iter = 0 the library returned iterate 1" in result.error, result.error


def test_newton_schulz_orthogonalizer_is_flagged_with_the_cause():
    """[BJ-12] [PO-4] (item 5) a torch port of Muon's quintic Newton-Schulz declared as Björck
    leaves singular values above 1: bjorck.at_most_one fails and names the consequence, while
    reflip's own Björck through the protocol passes it."""
    from reflip.audit import ReflipAdapter

    report = check_implementation(ports.newton_schulz_adapter(), primitives=["bjorck"],
                                  checks=["bjorck.at_most_one"], shrink=False, **F64)
    (result,) = report.results
    assert result.status == "fail"
    assert ("singular values above 1: the layer is not 1-Lipschitz; certificates computed from it are invalid"
            in result.error)
    assert result.failing_figures["excess_over_one"] > 0.01
    ours = check_implementation(ReflipAdapter(), primitives=["bjorck"], checks=["bjorck.at_most_one"])
    assert ours.ok and ours.checked == 2, ours.to_markdown()


def test_averaged_tie_gradients_are_named_by_the_tie_claim_too():
    """[GS-7] (c) the stable-order claim, failed by the averaged gradient, names the averaging."""
    report = check_implementation(ports.half_split_adapter(), primitives=["group_sort"], checks=["group_sort.ties"],
                                  **F64)
    result = _result(report, "group_sort.ties")
    assert result.status == "fail" and "AVERAGE of their cotangents" in result.error, result.error
