"""A primitive is the unit of the layout: every registered primitive has its strategy, its
benchmark inputs (or a stated opt-out), its proof label, its claims (the generic ones among
them), its protocol parameters and its mutants, and the test support reaches into the core
only through the declared internal API. CONTRIBUTING.md ("Adding a primitive") lists the
files; this test fails when one of them is missing."""
import ast
import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from reflip._registry import REGISTRY
from reflip.audit import PROTOCOL_PARAMS, claims_for
from reflip.audit.engine import CLAIMS, statement_of
from reflip.audit.generic import GENERIC
from reflip.testing import CORE_INTERNALS
from reflip.testing.mutants import META_MUTANTS, all_mutants

ROOT = Path(__file__).resolve().parents[1]
PRIMITIVES = sorted(REGISTRY)
# Primitives without benchmark inputs, and why.
BENCH_OPT_OUT = {
    "max_min_network": "its evaluation is dense layers and MaxMin; GroupSort's benchmarks time the MaxMin",
}
ONE_EXAMPLE = settings(max_examples=1, phases=[Phase.generate], database=None, deadline=None,
                       suppress_health_check=list(HealthCheck))


def _labels():
    heading = re.compile(r"^#{2,4} \[([A-Z]{2,4}-\d+)\]", re.M)
    return {label for path in (ROOT / "proofs").glob("*.md") for label in heading.findall(path.read_text("utf-8"))}


def _area(name):
    """The core module a primitive lives in, as the test support mirrors it: ``groupsort``,
    ``projections``, ``universality`` (for ``reflip.universality.network``)..."""
    return REGISTRY[name].fwd.__module__.split(".")[1]


def test_the_registry_is_the_paper():
    assert set(PRIMITIVES) >= {"group_sort", "bjorck", "linf_project", "pinf_project", "row_scale",
                               "spectral_normalize", "max_min_network"}


@pytest.mark.parametrize("name", PRIMITIVES)
def test_strategy_draws_every_kind_its_claims_need(name):
    """The registry's strategy path resolves, and it draws a case for every kind of case the
    primitive's claims ask for, in both dtypes."""
    factory = REGISTRY[name].strategy_factory()
    drawn = []

    def keep(case):
        drawn.append(case)

    for kind in sorted({c.kind for c in claims_for(name)}):
        for dtype in ("float32", "float64"):
            ONE_EXAMPLE(given(factory(dtype, kind))(keep))()
            assert isinstance(drawn[-1].params, dict), (name, kind, dtype)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_the_layout_mirrors_the_core(name):
    """Its claims in reflip/audit/<area>.py and its cases in reflip/testing/strategies/<area>.py,
    named after the core module (CONTRIBUTING.md, "Adding a primitive")."""
    area = _area(name)
    assert (ROOT / "reflip" / "audit" / f"{area}.py").is_file(), area
    assert (ROOT / "reflip" / "testing" / "strategies" / f"{area}.py").is_file(), area
    modules = {c.check.__module__ for c in claims_for(name) if c.check.__module__ != "reflip.audit.generic"}
    assert f"reflip.audit.{area}" in modules, modules


@pytest.mark.parametrize("name", PRIMITIVES)
def test_bench_inputs_exist_or_are_opted_out(name):
    record = REGISTRY[name]
    if name in BENCH_OPT_OUT:
        assert record.bench_inputs is None, f"{name} has bench inputs: drop its opt-out"
        return
    import array_api_compat.numpy as xp

    cases = record.bench_factory()(xp, "float32", size="small")
    assert cases, name
    for label, x, params in cases:
        y = record.fun(x, **params)
        assert np.all(np.isfinite(np.asarray(y))), (name, label)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_proof_labels_exist(name):
    """The record's proof label and every claim's label are defined in proofs/."""
    labels = _labels()
    assert REGISTRY[name].proof in labels, REGISTRY[name].proof
    missing = sorted({c.label for c in claims_for(name)} - labels)
    assert not missing, missing


@pytest.mark.parametrize("name", PRIMITIVES)
def test_generic_and_own_claims(name):
    """Every generic claim, and at least one claim of its own."""
    ids = {c.id for c in claims_for(name)}
    generic = {f"{name}.{g}" for g, *_ in GENERIC}
    assert generic <= ids, sorted(generic - ids)
    assert ids - generic, f"{name} has only the generic claims"


@pytest.mark.parametrize("name", PRIMITIVES)
def test_protocol_parameters_are_declared(name):
    """What an adapter's function is passed is declared (None: every parameter), and names
    parameters of reflip's forward."""
    assert name in PROTOCOL_PARAMS, f"declare {name!r} in reflip.audit.adapter.PROTOCOL_PARAMS"
    import inspect

    params = set(inspect.signature(REGISTRY[name].fwd).parameters)
    assert set(PROTOCOL_PARAMS[name] or ()) <= params


@pytest.mark.parametrize("name", PRIMITIVES)
def test_mutants_are_declared(name):
    """Broken versions of it exist: in the mutant library, or in a meta-test of its own."""
    library = {primitive for primitive, _ in all_mutants().values()}
    if name in library:
        return
    assert name in META_MUTANTS, f"no mutant of {name}: add reflip/testing/mutants_<area>.py"
    assert "MUTANTS" in (ROOT / META_MUTANTS[name]).read_text("utf-8")


def test_every_check_is_declared_and_states_its_docstring():
    """Every ``_check_*`` function of the claim modules is declared as a claim (a check written
    without its decorator would never run), and each claim's statement is its check's
    docstring's first line."""
    registered = {(c.check.__module__, c.check.__name__) for c in CLAIMS.values()}
    claims_module = ast.parse((ROOT / "reflip" / "audit" / "claims.py").read_text("utf-8"))
    declaring = [a.name for node in claims_module.body if isinstance(node, ast.ImportFrom) for a in node.names]
    for stem in declaring + ["generic"]:
        path = ROOT / "reflip" / "audit" / f"{stem}.py"
        module = f"reflip.audit.{stem}"
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_check_"):
                assert (module, node.name) in registered, f"{module}.{node.name} is not declared as a claim"
    for c in CLAIMS.values():
        assert c.statement.startswith(statement_of(c.check)), c.id


def test_claim_decorator_rejects_a_check_without_statement():
    from reflip.audit.engine import claim

    def _check_nothing(impl, case, backend, dtype):
        return {}

    with pytest.raises(ValueError, match="docstring"):
        claim("group_sort.never_registered", "GS-1", "general")(_check_nothing)
    assert "group_sort.never_registered" not in CLAIMS
    with pytest.raises(ValueError, match="<primitive>.<name>"):
        claim("no_primitive", "GS-1", "general")(_check_nothing)


@pytest.mark.parametrize("module", sorted(CORE_INTERNALS))
def test_core_internals_exist(module):
    """The private functions the mutants and the diagnosis use still exist under these names."""
    mod = importlib.import_module(module)
    missing = [name for name in CORE_INTERNALS[module] if not callable(getattr(mod, name, None))]
    assert not missing, f"{module} no longer has {missing}: update reflip.testing.CORE_INTERNALS and its users"


def _private_imports(path):
    """``(module, name)`` for every private name imported from a reflip module in ``path``
    (function-local imports included)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                if alias.name.startswith("_") and module.startswith("reflip"):
                    yield module, alias.name


def test_test_support_uses_only_declared_internals():
    """No private name of the core is imported by the audit or the test support unless
    :data:`reflip.testing.CORE_INTERNALS` lists it (the audit's and test support's own private
    modules excepted)."""
    own = ("reflip.audit", "reflip.testing")
    undeclared = []
    for folder in ("audit", "testing"):
        for path in sorted((ROOT / "reflip" / folder).rglob("*.py")):
            for module, name in _private_imports(path):
                if module.startswith(own) or name in CORE_INTERNALS.get(module, ()):
                    continue
                undeclared.append(f"{path.relative_to(ROOT)}: {module}.{name}")
    assert not undeclared, "private core functions used without being declared: " + "; ".join(undeclared)

