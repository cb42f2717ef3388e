"""Test support shipped with the package so that users can run reflip's suite on their own
implementations: backend cases, hypothesis strategies and a library of broken implementations
(mutants) that the suite must catch.

Internal API of the core used by the test support
-------------------------------------------------
The mutants (``reflip/testing/mutants_*.py``, ``tests/meta``) rebuild a primitive with one bug
planted, and the diagnosis (``reflip/audit/diagnose.py``) re-runs one under an alternative
convention; both reuse the core's private building blocks rather than copies of them. Those
functions are the seam between the core and its test support: :data:`CORE_INTERNALS` names
each one and its module. A core module may rename or change them only together with their
users and this list; ``tests/test_registry.py`` checks that every name exists and that no
private name of the core is imported here or in the audit without being listed.
"""

# module -> private functions of it that the test support imports (or reaches as attributes).
CORE_INTERNALS = {
    # mutants_groupsort: the forward/backward on the grouped view, with the permutation swapped.
    "reflip.groupsort": ("_group_sort_fwd", "_group_sort_bwd", "_grouped", "_ungrouped"),
    # mutants_bjorck and diagnose: validation into a config, the scaling, one step of the
    # iteration and its VJP, the recomputed iterates of the backward, the convergence report.
    "reflip.bjorck": ("_validated", "_bjorck_fwd", "_report_convergence", "_scale", "_scale_jacobian",
                      "_scaled_eyes", "_step", "_step_vjp", "_recomputed_pairs", "_tall"),
    # mutants_polar: validation into a config and the core forward, with the schedule swapped.
    "reflip.polar": ("_validated", "_polar_fwd"),
    # mutants_projections: the l1-ball projection's forward and Jacobian.
    "reflip.projections": ("_l1_ball_fwd", "_l1_ball_jacobian"),
    # tests/meta/test_universality_mutants.py: the layers of an evaluation on a backend.
    "reflip.universality.network": ("_on_backend", "_affine", "_transpose"),
}

__all__ = ["CORE_INTERNALS"]
