"""`reflip reproduce` end to end in the tiny configuration: every experiment runs from the CLI,
writes results.json (schema checked here, independently of the writer), summary.md and PNG
plots of the expected pixel sizes; the numbers obey the relations that hold whatever the
training did (the [RP-2] bound, certified <= PGD accuracy, no certified point broken).
Meta-tests plant broken outputs and require the checks to reject them."""
import json
import math
import shutil

import numpy as np
import pytest

from reflip.cli import main
from reflip.reproduce.results import png_size

EXPECTED_PLOTS = {
    "wasserstein": {"critic_abs": (800, 500), "critic_cones": (1200, 600), "critic_gmm_square": (1200, 600),
                    "learning_curves": (1200, 600),
                    **{f"gradnorm_{t}": (800, 500) for t in ("abs", "cones", "cone128", "gmm_square", "gauss16")}},
    "robustness": {"accuracy_l2": (800, 500), "accuracy_linf": (800, 500), "learning_curves": (1200, 600)},
    "gnp": {"gradnorm_critics": (800, 500), "gradnorm_classifiers": (800, 500)},
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    code = main(["reproduce", "all", "--tiny", "--seed", "3", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fraction(x):
    return _number(x) and 0.0 <= x <= 1.0


def check_common(doc, experiment):
    assert doc["reflip_reproduce"] == 2
    assert doc["experiment"] == experiment and doc["mode"] == "tiny" and doc["seeds"] == [3]
    assert doc["jobs"]["count"] > 0 and doc["jobs"]["missing"] == [] and doc["jobs"]["cpu_seconds"] > 0
    assert doc["backend"] == "numpy" and doc["device"].startswith("CPU ")
    assert {"python", "reflip", "numpy", "scipy", "scikit-learn", "matplotlib"} <= set(doc["versions"])
    assert doc["command"][:3] == ["reflip", "reproduce", "all"]
    assert isinstance(doc["started"], str) and _number(doc["wall_seconds"]) and doc["wall_seconds"] > 0
    assert isinstance(doc["config"], dict) and doc["config"]["dtype"] == "float32"
    assert doc["checks"] and all(isinstance(c["name"], str) and isinstance(c["passed"], bool)
                                 and isinstance(c["detail"], str) for c in doc["checks"])


def check_files(folder, doc, experiment):
    """Every expected plot is listed, exists, is a PNG of the expected size, and is not blank."""
    from matplotlib.image import imread

    listed = {f["path"]: (f["width"], f["height"]) for f in doc["files"]}
    assert listed == {f"{name}.png": size for name, size in EXPECTED_PLOTS[experiment].items()}
    for path, size in listed.items():
        assert png_size(folder / path) == size, path
        pixels = imread(folder / path)
        assert pixels.shape[:2] == (size[1], size[0]) and float(np.std(pixels)) > 0.01, path
    summary = (folder / "summary.md").read_text()
    assert summary.startswith(f"# reflip reproduce {experiment} (--tiny, seed 3)")
    assert "## Expected outcomes" in summary and "|---|" in summary


def check_wasserstein(res):
    assert set(res["tasks"]) == {"abs", "cones", "cone128", "gmm_square", "gauss16"}
    for name, task in res["tasks"].items():
        assert task["truth"]["kind"] == ("exact_ot" if name in ("gmm_square", "gauss16") else "known")
        assert _number(task["truth"]["w1"]) and task["truth"]["w1"] > 0
        assert len(task["critics"]) >= 3 and "ReLU" in task["critics"]
        for label, c in task["critics"].items():
            for key in ("estimate", "truth", "gap", "std_error", "lipschitz_upper", "train_seconds"):
                assert _number(c[key]), (name, label, key)
            assert c["gap"] == pytest.approx(c["truth"] - c["estimate"], abs=1e-12)
            assert c["std_error"] >= 0 and 0 < c["lipschitz_upper"] <= 1 + 1e-6
            g = c["grad_norm"]
            assert g["min"] <= g["median"] <= g["max"] and g["min"] <= g["mean"] <= g["max"]
            # A network whose product of operator norms is L has gradient norms <= L.
            assert g["max"] <= c["lipschitz_upper"] * (1 + 1e-9)
            assert _fraction(g["fraction_at_target"]) and _fraction(g["fraction_above_0.99"])
            if task["truth"]["kind"] == "exact_ot":
                # [RP-2], recomputed from the reported numbers.
                assert c["estimate"] <= c["lipschitz_upper"] * task["truth"]["w1"] * (1 + 1e-9)
                assert c["bound_holds"] is True


def check_robustness(res):
    models = res["classifiers"]
    assert len(models) == 3
    for name, m in models.items():
        assert _fraction(m["clean_accuracy"]) and m["n_eval"] > 0
        norms = [n for n in ("l2", "linf") if n in m]
        assert norms, name
        for norm in norms:
            s = m[norm]
            assert s["eps"][0] == 0 and s["eps"] == sorted(s["eps"])
            cert, pgd = s["certified_accuracy"], s["pgd_accuracy"]
            assert len(cert) == len(pgd) == len(s["eps"]) == len(s["certified_points_broken"])
            assert all(_fraction(v) for v in cert + pgd)
            assert cert == sorted(cert, reverse=True), "certified accuracy must not grow with the radius"
            # Sound certificates: a certified point survives every attack [CT-6].
            assert all(c <= p + 1e-12 for c, p in zip(cert, pgd, strict=True)), (name, norm)
            assert s["certified_points_broken"] == [0] * len(cert)
            assert cert[0] <= m["clean_accuracy"] + 1e-12 and _number(s["lipschitz_upper"])


def check_gnp(res):
    for group in ("critics", "classifiers"):
        nets = res[group]
        assert len(nets) >= 2
        for name, n in nets.items():
            g = n["grad_norm"]
            assert _number(g["mean"]) and g["min"] <= g["median"] <= g["max"]
            assert n["activity"], name
            for layer in n["activity"]:
                if layer["activation"] == "relu":
                    assert _fraction(layer["never_active"]) and _fraction(layer["always_active"])
                    assert layer["never_active"] + layer["always_active"] <= 1
                else:
                    assert _fraction(layer["fixed_permutation"])


CHECKS = {"wasserstein": check_wasserstein, "robustness": check_robustness, "gnp": check_gnp}


def check_folder(folder, experiment):
    doc = json.loads((folder / "results.json").read_text())
    check_common(doc, experiment)
    check_files(folder, doc, experiment)
    CHECKS[experiment](doc["results"]["seeds"]["3"])


@pytest.mark.parametrize("experiment", sorted(CHECKS))
def test_tiny_run(outputs, experiment):
    check_folder(outputs / experiment, experiment)


def test_usage_errors(capsys, tmp_path):
    assert main(["reproduce", "robustness", "--tiny", "--tasks", "abs", "--out", str(tmp_path)]) == 2
    assert "tasks selects Wasserstein tasks" in capsys.readouterr().err
    assert main(["reproduce", "wasserstein", "--tiny", "--tasks", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown Wasserstein task(s) ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # an option value: argparse's usage error
        main(["reproduce", "gnp", "--tiny", "--threads", "0", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "argument --threads: must be an integer >= 1, got '0'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written
    with pytest.raises(SystemExit):
        main(["reproduce", "wasserstein", "--quick", "--full"])
    with pytest.raises(SystemExit):
        main(["reproduce", "everything"])


def test_cupy_backend_without_cupy(capsys, tmp_path):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    assert main(["reproduce", "gnp", "--tiny", "--backend", "cupy", "--out", str(tmp_path)]) == 2
    assert "--backend cupy needs CuPy" in capsys.readouterr().err


# --- meta-tests: broken outputs the checks must reject -------------------------------------------

def _edit_json(folder, edit):
    path = folder / "results.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _set(path, value):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _first_critic(doc, task):
    return next(iter(doc["results"]["seeds"]["3"]["tasks"][task]["critics"].values()))


def _plant_above_bound(doc):
    c = _first_critic(doc, "gauss16")
    c["estimate"] = 1.01 * c["lipschitz_upper"] * doc["results"]["seeds"]["3"]["tasks"]["gauss16"]["truth"]["w1"]
    c["gap"] = c["truth"] - c["estimate"]


def _plant_certified_above_pgd(doc):
    m = doc["results"]["seeds"]["3"]["classifiers"]["MaxMin Björck (hinge)"]["l2"]
    m["pgd_accuracy"][1] = m["certified_accuracy"][1] - 0.01 if m["certified_accuracy"][1] > 0 else -0.5


def _plant_broken_point(doc):
    doc["results"]["seeds"]["3"]["classifiers"]["ReLU baseline"]["linf"]["certified_points_broken"][-1] = 1


def _plant_gradient_above_lipschitz(doc):
    c = _first_critic(doc, "abs")
    c["grad_norm"]["max"] = 2 * c["lipschitz_upper"]


def _blank_png(folder):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    fig.savefig(folder / "accuracy_l2.png")


def _resized_png(folder):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(folder / "gradnorm_critics.png")


PLANTED = {
    "estimate above L * W1": ("wasserstein", lambda f: _edit_json(f, _plant_above_bound)),
    "gradient norm above the Lipschitz bound": ("wasserstein",
                                                lambda f: _edit_json(f, _plant_gradient_above_lipschitz)),
    "a missing plot": ("wasserstein", lambda f: (f / "critic_cones.png").unlink()),
    "NaN estimate": ("wasserstein",
                     lambda f: _edit_json(f, lambda d: _first_critic(d, "cones").update(estimate="NaN"))),
    "certified above PGD accuracy": ("robustness", lambda f: _edit_json(f, _plant_certified_above_pgd)),
    "a certified point broken": ("robustness", lambda f: _edit_json(f, _plant_broken_point)),
    "a blank plot": ("robustness", _blank_png),
    "a plot of the wrong size": ("gnp", _resized_png),
    "no seed": ("gnp", lambda f: _edit_json(f, lambda d: d.pop("seeds"))),
    "no versions": ("gnp", lambda f: _edit_json(f, _set(["versions"], {"python": "3"}))),
    "an activity fraction above 1": ("gnp", lambda f: _edit_json(
        f, lambda d: next(iter(d["results"]["seeds"]["3"]["critics"].values()))["activity"][0].update(never_active=1.5,
                                                                                         fixed_permutation=1.5))),
}


@pytest.mark.meta
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_output_bug_is_caught(outputs, tmp_path, bug):
    experiment, plant = PLANTED[bug]
    folder = tmp_path / experiment
    shutil.copytree(outputs / experiment, folder)
    check_folder(folder, experiment)  # the untouched copy passes
    plant(folder)
    with pytest.raises((AssertionError, KeyError, FileNotFoundError)):
        check_folder(folder, experiment)


def test_tiny_runs_on_array_api_strict(tmp_path):
    """The reproductions use only array-API operations on their arrays (the CuPy backend's
    requirement, checked here without a GPU): a tiny run of each on array_api_strict, with
    one task of each kind of truth, passes the same output checks."""
    strict = pytest.importorskip("array_api_strict")
    from reflip.reproduce import common, gnp, robustness, wasserstein

    ctx = common.Context("tiny", 3, progress=False)
    ctx.xp = strict
    folder = wasserstein.run(ctx, tmp_path, tasks=["abs", "gmm_square"], command=["reflip", "reproduce", "all"])
    doc = json.loads((folder / "results.json").read_text())
    assert set(doc["results"]["seeds"]["3"]["tasks"]) == {"abs", "gmm_square"}
    for task in doc["results"]["seeds"]["3"]["tasks"].values():
        for c in task["critics"].values():
            assert _number(c["estimate"]) and c.get("bound_holds", True) is True
    for module in (robustness, gnp):
        folder = module.run(ctx, tmp_path, command=["reflip", "reproduce", "all"])
        check_folder(folder, folder.name)


def test_missing_extra_is_reported(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert main(["reproduce", "gnp", "--tiny", "--out", str(tmp_path)]) == 2
    assert "needs ['sklearn']: pip install 'reflip[reproduce]'" in capsys.readouterr().err
