"""Auditing an implementation through the adapter protocol: translation of declared
conventions, "not provided", a harness that survives any adapter, expected failures, reports,
the library call, the decorator, the CLI and the pytest plugin."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from reflip.audit import (
    AdapterImpl,
    ReflipAdapter,
    check_implementation,
    load_impl,
    parametrize_with_checks,
    read_xfails,
)
from reflip.audit.api import counterexample_snippet
from reflip.cli import main
from reflip.layouts import MAX_MIN_LAYOUTS, max_min_layout
from reflip.testing.mutants import ADAPTER_MUTANTS

GS = dict(primitives=["group_sort"], dtypes=["float64"])


def statuses(report):
    return {r.claim.id.split(".", 1)[1]: r.status for r in report.results}


def test_reflip_through_the_protocol_passes_everything():
    """[GS-1] [GS-4] reflip's own ops behind the adapter protocol pass every check, including
    the comparison with reflip (which exercises the harness's own translation)."""
    report = check_implementation(ReflipAdapter(), **GS)
    assert report.ok, report.to_markdown()
    assert set(statuses(report).values()) == {"pass"}
    assert "matches_reflip" in statuses(report)


class Layout:
    """A correct MaxMin in a foreign layout, declared."""

    def __init__(self, layout):
        self.layout = layout
        self.conventions = {"group_sort.layout": layout, "group_sort.group_sizes": [2]}

    def group_sort(self, x, k, axis=-1):
        assert k == 2
        return max_min_layout(x, self.layout, axis=axis)


@pytest.mark.parametrize("layout", MAX_MIN_LAYOUTS)
def test_declared_layouts_pass(layout):
    """[GS-9] a declared layout is translated: the library passes, on group size 2 only."""
    report = check_implementation(Layout(layout), **GS)
    assert report.ok, report.to_markdown()
    assert statuses(report)["sorted_permutation"] == "pass"


@pytest.mark.parametrize("layout", [lay for lay in MAX_MIN_LAYOUTS if lay != "contiguous_min_max"])
def test_undeclared_layout_is_named(layout):
    """[GS-9] the same library without the declaration fails, and the failure names the layout."""
    adapter = Layout(layout)
    adapter.conventions = {"group_sort.group_sizes": [2]}
    # The diagnosis is the comparison with reflip's; the failures of the other checks are the
    # mutant library's business (tests/meta/test_mutant_library.py).
    report = check_implementation(adapter, checks=["group_sort.matches_reflip"], shrink=False, **GS)
    assert not report.ok
    assert f"declare conventions['group_sort.layout'] = '{layout}'" in report.to_markdown()


class NumGroups:
    conventions = {"group_sort.argument": "num_groups"}

    def group_sort(self, x, num_groups, axis=-1):
        xm = np.moveaxis(x, axis, -1)
        y = np.sort(xm.reshape(*xm.shape[:-1], num_groups, -1), axis=-1).reshape(xm.shape)
        return np.moveaxis(y, -1, axis)


def test_number_of_groups_declared_and_undeclared():
    """[GS-9] declared, the number-of-groups convention passes; undeclared, the audit asks
    whether the number of groups was passed."""
    assert check_implementation(NumGroups(), **GS).ok
    undeclared = NumGroups()
    undeclared.conventions = {}
    text = check_implementation(undeclared, checks=["group_sort.matches_reflip"], shrink=False, **GS).to_markdown()
    assert "did you pass the number of groups?" in text


class ForwardOnly:
    name = "forward only"

    def group_sort(self, x, k, axis=-1):
        return ReflipAdapter().group_sort(x, group_size=k, axis=axis)


def test_missing_functions_are_not_provided():
    report = check_implementation(ForwardOnly(), **GS)
    s = statuses(report)
    assert report.ok
    assert s["isometry"] == s["fd"] == s["adjoint"] == "not provided"
    assert s["sorted_permutation"] == s["lipschitz"] == "pass"
    nothing = check_implementation(object(), **GS)
    assert {r.status for r in nothing.results} == {"not provided"} and nothing.ok


class Misbehaving:
    """Every way an adapter can break the harness's assumptions, one per mode."""

    def __init__(self, mode):
        self.mode = mode
        self.name = f"misbehaving ({mode})"

    def group_sort(self, x, k, axis=-1):
        y = ReflipAdapter().group_sort(x, group_size=k, axis=axis)
        if self.mode == "raises":
            raise RuntimeError("boom")
        if self.mode == "shape":
            return y.ravel()[:-1]
        if self.mode == "dtype":
            return y.astype(np.float16)
        if self.mode == "nan":
            return np.full_like(y, np.nan)
        if self.mode == "list":
            return object()
        if self.mode == "hangs":
            import time

            time.sleep(60)
        return y


@pytest.mark.parametrize("mode, words", [
    ("raises", "adapter method group_sort raised RuntimeError: boom"),
    ("shape", "returned shape"),
    ("dtype", "returned dtype float16"),
    ("nan", "returned NaN or inf for a finite input"),
    ("list", "does not convert to an array"),
    ("hangs", "CheckTimeout"),
])
def test_harness_survives_any_adapter(mode, words):
    """Failures of the adapter are reported per check; the run itself never crashes."""
    report = check_implementation(Misbehaving(mode), dtypes=["float64"], primitives=["group_sort"],
                                  checks=["group_sort.sorted_permutation"], shrink=False,
                                  timeout=1.0 if mode == "hangs" else 120.0)
    (result,) = report.results
    assert result.status == "fail" and words in result.error, result.error


def test_expected_failures(tmp_path):
    path = tmp_path / "xfails.txt"
    path.write_text("# we sort descending on purpose\ngroup_sort.sorted_permutation\n\n"
                    "# stale entry: this check passes\n# (two comment lines make one reason)\n"
                    "group_sort.lipschitz[float64]\n")
    xfails = read_xfails(path)
    reason = "stale entry: this check passes (two comment lines make one reason)"
    assert xfails["group_sort.lipschitz[float64]"] == reason
    from reflip.testing.mutants import RecordAdapter
    from reflip.testing.mutants_groupsort import MUTANTS

    report = check_implementation(RecordAdapter("descending", MUTANTS["descending"]), xfails=str(path),
                                  checks=["group_sort.sorted_permutation", "group_sort.lipschitz"], **GS)
    s = statuses(report)
    assert s == {"sorted_permutation": "xfail", "lipschitz": "xpass"}
    assert not report.ok and "XPASS" in report.to_markdown()
    bad = tmp_path / "bad.txt"
    bad.write_text("group_sort.lipschitz\n")
    with pytest.raises(ValueError, match="has no reason above it"):
        read_xfails(bad)


def test_counterexample_snippet_reproduces_the_failure():
    """The printed minimal case is valid Python that rebuilds the failing input."""
    _, adapter = ADAPTER_MUTANTS["maxes_then_mins_undeclared"]
    report = check_implementation(adapter, checks=["group_sort.sorted_permutation"], **GS)
    (result,) = report.results
    snippet = counterexample_snippet(result)
    namespace = {}
    exec(snippet, namespace)  # noqa: S102  (the snippet is ours)
    x, params = namespace["x"], namespace["params"]
    impl = AdapterImpl(adapter, "group_sort")
    y = impl.fun(x, **params)
    assert not np.array_equal(np.sort(x), y) or x.ndim > 1


def test_load_impl():
    assert isinstance(load_impl("reflip.audit.adapter:ReflipAdapter"), ReflipAdapter)
    with pytest.raises(ValueError, match="package.module:adapter"):
        load_impl("reflip.audit.adapter")
    with pytest.raises(ValueError, match="unknown convention"):
        AdapterImpl(type("A", (), {"conventions": {"group_sort.order": 1}})(), "group_sort")
    with pytest.raises(ValueError, match="must be one of"):
        AdapterImpl(type("A", (), {"conventions": {"group_sort.layout": "zigzag"}})(), "group_sort")


@parametrize_with_checks(ReflipAdapter(), primitives=["group_sort"], dtypes=["float32"])
def test_parametrize_with_checks(check):
    """The decorator gives one test per check; reflip through the protocol passes each."""
    check()


def test_cli_impl_and_mutants(capsys, tmp_path):
    assert main(["audit", "--impl", "reflip.audit.adapter:ReflipAdapter", "--primitive", "group_sort",
                 "--dtype", "float64", "--report", str(tmp_path / "r.md")]) == 0
    assert "0 fail" not in capsys.readouterr().out  # the summary lists only non-zero counts
    assert main(["audit", "--impl", "no.such.module:X"]) == 2
    assert "cannot load" in capsys.readouterr().err


PLUGIN_ADAPTER = textwrap.dedent('''
    import numpy as np

    class Descending:
        name = "descending"

        def group_sort(self, x, k, axis=-1):
            xm = np.moveaxis(x, axis, -1)
            y = -np.sort(-xm.reshape(*xm.shape[:-1], -1, k), axis=-1)
            return np.moveaxis(y.reshape(xm.shape), -1, axis)
''')


def test_pytest_plugin(tmp_path):
    """`REFLIP_IMPL=... pytest` (the environment's default for `--reflip-impl`) turns every
    check into a test id and fails the broken ones; the adapter's module is imported from the
    current directory."""
    import os

    (tmp_path / "descending_lib.py").write_text(PLUGIN_ADAPTER)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k",
         "float64 and (sorted_permutation or matches_reflip)"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "REFLIP_IMPL": "descending_lib:Descending"},
        timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "FAILED" in out and "test_check[group_sort.sorted_permutation[numpy-float64]]" in out
    assert "DESCENDING" in out


class UnstableTies:
    """GroupSort whose ties go in REVERSE index order: still a permutation (gradient norms are
    kept) but not reflip's stable order."""

    def __init__(self, conventions):
        self.conventions = conventions

    def _perm(self, x, k, axis):
        xm = np.moveaxis(x, axis, -1)
        xg = xm.reshape(*xm.shape[:-1], -1, k)
        # Sorting the reversed group stably puts the later of two equal entries first.
        perm = k - 1 - np.argsort(xg[..., ::-1], axis=-1, kind="stable")
        return xm, xg, perm

    def group_sort(self, x, k, axis=-1):
        xm, xg, perm = self._perm(x, k, axis)
        return np.moveaxis(np.take_along_axis(xg, perm, -1).reshape(xm.shape), -1, axis)

    def group_sort_vjp(self, x, y_bar, k, axis=-1):
        xm, xg, perm = self._perm(x, k, axis)
        g = np.moveaxis(y_bar, axis, -1).reshape(xg.shape)
        out = np.empty_like(g)
        np.put_along_axis(out, perm, g, axis=-1)
        return np.moveaxis(out.reshape(xm.shape), -1, axis)


def test_tie_policy_declaration():
    """[GS-7] [GS-5] another tie order fails the stable-order check unless declared; the
    isometry at ties is required either way."""
    undeclared = statuses(check_implementation(UnstableTies({}), shrink=False, **GS))
    assert undeclared["ties"] == "fail" and undeclared["isometry_ties"] == "pass"
    declared = check_implementation(UnstableTies({"group_sort.ties": "any_permutation"}), **GS)
    assert declared.ok, declared.to_markdown()
    assert statuses(declared)["ties"] == "not applicable"


class ForwardOnlyBjorck:
    """A library's Björck forward with order 1 fixed, no VJP or JVP; with ``tol`` declared
    it stops at that tolerance and warns as reflip does."""

    def __init__(self, tol=None):
        self.name = "forward-only Björck" + (f", tol={tol}" if tol else "")
        self.tol = tol
        self.conventions = {"bjorck.params": {"order": 1, **({"tol": tol} if tol else {})}}

    def bjorck(self, w, beta=0.5, n_iter=25, scaling="frobenius"):  # reflip's defaults: a case may leave them out
        from reflip import bjorck

        return bjorck(w, order=1, beta=beta, n_iter=n_iter, scaling=scaling, tol=self.tol)


def test_bjorck_parameters_reach_the_adapter_only_through_the_protocol():
    """[BJ-7] [BJ-3] a Björck adapter is passed beta, n_iter and scaling only (its fixed order,
    and reflip's own options, never): the checks needing a VJP or JVP are "not provided", the
    convergence report is "not applicable" until the adapter declares its tolerance, and then
    it is checked."""
    checks = ["bjorck.spectral", "bjorck.fd", "bjorck.adjoint", "bjorck.report"]
    report = check_implementation(ForwardOnlyBjorck(), primitives=["bjorck"], dtypes=["float64"], checks=checks)
    assert statuses(report) == {"spectral": "pass", "fd": "not provided", "adjoint": "not provided",
                                "report": "not applicable"}, report.to_markdown()
    declared = check_implementation(ForwardOnlyBjorck(tol=1e-4), primitives=["bjorck"], dtypes=["float64"],
                                    checks=["bjorck.report"])
    assert statuses(declared) == {"report": "pass"}, declared.to_markdown()
