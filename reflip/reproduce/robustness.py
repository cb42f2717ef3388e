"""``reflip reproduce robustness``: certified robustness on scikit-learn's 8x8 digits.

Three classifiers of the same widths: an unconstrained ReLU baseline (cross-entropy, Adam); an
l_inf-projected MaxMin network (every weight row in the l1 ball, so 1-Lipschitz from l_inf to
l_inf, then a Scale) trained with the multi-class hinge, certified in l_inf; a Björck MaxMin
network (orthonormal weights, 1-Lipschitz in l2) with the hinge, certified in l2. For each:
clean test accuracy, certified accuracy against the radius (margin > c L eps, c = sqrt 2 for
l2 and 2 for l_inf, claim C8, [CT-3] [CT-4] [CT-5]), PGD accuracy against the radius, and the
check that PGD breaks no certified point [CT-6]. The certificates use the certified Lipschitz
upper bound measured from the trained weights (product of operator norms, Scale included),
never an assumed 1.
"""
from __future__ import annotations

import math

import numpy as np

from ..nn import certify, lipschitz, optim, train
from . import plotting
from .common import Timer, build_mlp, cast_params, host, milestone_schedule, seed_for
from .results import Run, markdown_table
from .tasks import ROBUSTNESS, ROBUSTNESS_CLASSIFIERS, load_digits_split

__all__ = ["run", "classifier_model", "train_classifier", "evaluate_classifier"]

_NORMS = {"l2": 2, "linf": math.inf}


def classifier_model(spec, cfg, in_features=64, n_classes=10):
    options = {"n_iter": cfg.bjorck_iter} if spec.constraint == "bjorck" else {}
    return build_mlp(in_features, tuple(cfg.hidden) + (n_classes,), spec.activation, spec.constraint,
                     scale=spec.scale, **options)


def _optimizer(spec, cfg, steps_per_epoch):
    """The paper code trains its l_inf networks with AggMo, its Björck and standard ones with Adam."""
    milestones = [m * steps_per_epoch for m in cfg.milestones]
    if spec.constraint == "linf":
        return optim.AggMo(lr=milestone_schedule(cfg.lr_aggmo, 0.1, milestones), betas=(0.0, 0.9, 0.99))
    return optim.Adam(lr=milestone_schedule(cfg.lr, 0.1, milestones))


def train_classifier(ctx, spec, cfg, data, *, desc):
    """Train one classifier on ``data`` (the digits split); ``(model, params, history, timer)``."""
    model = classifier_model(spec, cfg)
    params = model.init(seed=seed_for(ctx.seed, spec.name, "init"), xp=ctx.xp, dtype=ctx.dtype)
    batches = train.minibatches(ctx.asarray(data["x_train"]), ctx.xp.asarray(data["y_train"]),
                                batch_size=min(cfg.batch_size, len(data["y_train"])))
    loss, options = ("multi_margin", {"margin": spec.margin}) if spec.loss == "hinge" else ("cross_entropy", None)
    with Timer(ctx) as t:
        params, history = train.fit(model, params, batches, _optimizer(spec, cfg, batches.steps_per_epoch),
                                    loss=loss, loss_options=options, epochs=cfg.epochs,
                                    seed=seed_for(ctx.seed, "digits batches"), progress=ctx.progress, desc=desc)
    return model, params, history, t


def evaluate_classifier(ctx, model, params, data, cfg, norms):
    """Clean accuracy, then for each norm in ``norms`` ("l2", "linf"): the Lipschitz bound, the
    certified accuracy and the PGD accuracy at every radius, and the certified points PGD
    broke (must be none). Runs in float64."""
    xp = ctx.xp
    frozen, fp = model.freeze(cast_params(params, xp, "float64"))
    n_eval = cfg.n_eval or len(data["y_test"])
    x = ctx.asarray(data["x_test"][:n_eval], "float64")
    y = xp.asarray(data["y_test"][:n_eval])
    logits = frozen(fp, x)
    out = {"n_eval": n_eval,
           "clean_accuracy": float(np.mean(np.argmax(host(logits), axis=1) == data["y_test"][:n_eval]))}
    for norm in norms:
        p = _NORMS[norm]
        eps = cfg.eps_l2 if norm == "l2" else cfg.eps_linf
        L = lipschitz.upper_bound(frozen, fp, p=p)
        radius = host(certify.certified_radius(logits, y, L, p=p))
        certified = certify.certified_accuracy(logits, y, L, list(eps), p=p)
        pgd, broken = [], []
        for e in eps:
            if e == 0:
                pgd.append(out["clean_accuracy"])
                broken.append(0)
                continue
            x_adv = certify.pgd_attack(frozen, fp, x, y, float(e), p=p, steps=cfg.pgd_steps, bounds=(0.0, 1.0),
                                       seed=seed_for(ctx.seed, "pgd", norm, e))
            m_adv = host(certify.margins(frozen(fp, x_adv), y))
            pgd.append(float(np.mean(m_adv > 0)))
            broken.append(int(np.sum((radius > e) & (m_adv <= 0))))
        out[norm] = {"lipschitz_upper": L, "eps": list(eps), "certified_accuracy": list(map(float, certified)),
                     "pgd_accuracy": pgd, "certified_points_broken": broken,
                     "median_certified_radius": float(np.median(radius))}
    return out


def _plot(run, results, norm):
    """Certified (solid) and PGD (dashed) accuracy of every model evaluated in ``norm``."""
    curves = {}
    for i, (name, r) in enumerate(results.items()):
        if norm in r:
            eps = r[norm]["eps"]
            curves[f"{name}: certified"] = (eps, r[norm]["certified_accuracy"], {"color": f"C{i}", "marker": "o"})
            curves[f"{name}: PGD"] = (eps, r[norm]["pgd_accuracy"], {"color": f"C{i}", "ls": "--", "marker": "x"})
    name = "l2" if norm == "l2" else "l_inf"
    fig = plotting.accuracy_curves(curves, f"8x8 digits: accuracy under {name} perturbations",
                                   f"radius eps ({name}; pixels in [0, 1])")
    run.save_figure(fig, f"accuracy_{norm}")


def _norms_of(spec):
    """Baseline: both norms (its certificates from the product bound); the others: their own."""
    return ("l2", "linf") if spec.cert_p is None else (("l2",) if spec.cert_p == 2 else ("linf",))


def _checks(run, results):
    base = results[ROBUSTNESS_CLASSIFIERS[0].name]["clean_accuracy"]
    for spec in ROBUSTNESS_CLASSIFIERS[1:]:
        r = results[spec.name]
        norm = _norms_of(spec)[0]
        acc = r["clean_accuracy"]
        eps, cert = r[norm]["eps"], r[norm]["certified_accuracy"]
        # A "meaningful radius": the middle of the grid (l2 0.3, l_inf 0.03 on [0, 1] pixels).
        k = len(eps) // 2
        run.check(f"{spec.name}: clean accuracy within 5 points of the baseline",
                  acc >= base - 0.05, f"{acc:.4f} vs baseline {base:.4f}")
        run.check(f"{spec.name}: certified accuracy > 0 at {norm} radius {eps[k]}",
                  cert[k] > 0, f"certified {cert[k]:.4f} at eps {eps[k]}")
    broken = {f"{name} {norm}": sum(r[norm]["certified_points_broken"])
              for name, r in results.items() for norm in _NORMS if norm in r}
    run.check("PGD breaks no certified point (any model, norm, radius)", not any(broken.values()),
              ", ".join(f"{k}: {v}" for k, v in broken.items()))


def summary(results, cfg):
    rows = []
    for name, r in results.items():
        for norm in _NORMS:
            if norm not in r:
                continue
            s = r[norm]
            for e, c, a, b in zip(s["eps"], s["certified_accuracy"], s["pgd_accuracy"], s["certified_points_broken"]):
                rows.append([name, norm, e, r["clean_accuracy"], c, a, b, s["lipschitz_upper"]])
    header = ["model", "norm", "eps", "clean acc.", "certified acc.", "PGD acc.", "certified broken", "Lipschitz bound"]
    return ("## Certified robustness, 8x8 digits (test split)\n\n" + markdown_table(header, rows) + "\n\n"
            "Certified: margin > sqrt(2) L eps (l2) or 2 L eps (l_inf) with L the measured product of the layers' "
            f"operator norms (Scale included). PGD: {cfg.pgd_steps} steps, random start, pixels kept in [0, 1].\n")


def run(ctx, out, command=None):
    """Run the robustness reproduction; returns the results folder."""
    cfg = ROBUSTNESS[ctx.mode]
    run_ = Run("robustness", mode=ctx.mode, seed=ctx.seed, backend=ctx.backend, out=out, command=command)
    data = load_digits_split(seed=ctx.seed, n_train=cfg.n_train)
    run_.config = {"dtype": ctx.dtype, "threads": ctx.threads, "settings": cfg,
                   "classifiers": list(ROBUSTNESS_CLASSIFIERS),
                   "data": {"name": "sklearn.datasets.load_digits", "n_train": len(data["y_train"]),
                            "n_test": len(data["y_test"]), "pixels": "scaled to [0, 1]"}}
    results = {}
    with ctx.blas_threads():
        for spec in ROBUSTNESS_CLASSIFIERS:
            model, params, history, timer = train_classifier(ctx, spec, cfg, data, desc=spec.name)
            r = evaluate_classifier(ctx, model, params, data, cfg, _norms_of(spec))
            r.update({"train_seconds": timer.seconds, "train_cpu_seconds": timer.cpu_seconds,
                      "final_train_loss": history.loss[-1], "steps": len(history.loss),
                      "train_grad_norm_max": max(history.grad_norm)})
            results[spec.name] = r
            ctx.note(f"{spec.name}: clean accuracy {r['clean_accuracy']:.4f} ({timer.seconds:.0f} s)")
    run_.results = {"classifiers": results}
    for norm in _NORMS:
        _plot(run_, results, norm)
    _checks(run_, results)
    run_.write(summary(results, cfg))
    return run_.folder
