"""The claim runner's record of measured and skipped cases [AU-5] (reflip/audit/engine.py)."""
import numpy as np
import pytest

from reflip._registry import REGISTRY
from reflip.audit import CLAIMS, Claim, ClaimFailure, NotMeasured, NotSupported, run_claim
from reflip.audit.api import hypothesis_settings
from reflip.testing.backends import available_backends
from reflip.testing.strategies.common import Case

NUMPY = available_backends(("numpy",))[0]
SETTINGS = hypothesis_settings("quick")


def _claim(check):
    return Claim("group_sort.probe", "group_sort", "AU-5", "a probe of the runner", "general", check)


def _skips_when(predicate, exc=NotMeasured):
    calls = {"measured": 0, "skipped": 0}

    def check(impl, case, backend, dtype):
        if predicate(case):
            calls["skipped"] += 1
            raise exc("outside the probe's premise")
        calls["measured"] += 1
        return {}

    return check, calls


@pytest.mark.parametrize("exc", [NotMeasured, NotSupported])
def test_a_claim_that_skips_every_case_fails_naming_claim_backend_and_dtype(exc):
    check, calls = _skips_when(lambda case: True, exc)
    result = run_claim(_claim(check), REGISTRY["group_sort"], NUMPY, "float32", settings=SETTINGS)
    assert result.status == "fail" and not result.passed
    assert result.examples == 0 and result.skipped == calls["skipped"] > 0
    assert "group_sort.probe measured no case on numpy float32" in result.error
    assert f"all {calls['skipped']} drawn cases were skipped" in result.error
    with pytest.raises(ClaimFailure, match="measured no case on numpy float32"):
        run_claim(_claim(check), REGISTRY["group_sort"], NUMPY, "float32")  # pytest mode re-raises


def test_measured_and_skipped_cases_are_recorded_apart():
    check, calls = _skips_when(lambda case: case.x.ndim == 1)
    result = run_claim(_claim(check), REGISTRY["group_sort"], NUMPY, "float64", settings=SETTINGS)
    assert result.status == "pass", result.error
    assert (result.examples, result.skipped) == (calls["measured"], calls["skipped"])
    assert result.examples > 0 and result.skipped > 0  # the strategy draws both kinds


def test_a_check_returning_nothing_still_counts_as_measured():
    """Returning no figures is a measurement (a property that held); only an exception skips."""
    result = run_claim(_claim(lambda *args: None), REGISTRY["group_sort"], NUMPY, "float64",
                       settings=SETTINGS)
    assert result.status == "pass" and result.examples > 0 and result.skipped == 0


OUT_OF_PREMISE = {
    # a claim about stacks, on one matrix
    "bjorck.batch": dict(x=np.eye(3), n_iter=3),
    # [BJ-12] states nothing once ||W||_2 > 1 under the spectral-norm-free scalings
    "bjorck.at_most_one": dict(x=4 * np.eye(3), n_iter=3, scaling="none"),
    # rows inside the ball: there are none
    "linf_project.identity_inside": dict(x=np.full((2, 3), 5.0), radius=1.0),
}


@pytest.mark.parametrize("claim_id", sorted(OUT_OF_PREMISE))
def test_a_case_outside_a_claims_premise_is_skipped_not_passed(claim_id):
    params = dict(OUT_OF_PREMISE[claim_id])
    case = Case(np.asarray(params.pop("x"), np.float64), params)
    claim = CLAIMS[claim_id]
    with pytest.raises(NotMeasured):
        claim.check(REGISTRY[claim.primitive], case, NUMPY, "float64")
