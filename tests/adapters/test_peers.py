"""The ready adapters of reflip.adapters.peers on the real libraries (the test extra pins their
versions): each library's audit fails exactly the checks the defect catalogue
(reflip/adapters/peer_defects.py) says, for the cause it names, and passes the others selected
here; every reproduction snippet of the catalogue and of the published audits (docs/audits/)
runs and still shows its defect. A release that fixes or introduces a defect fails here.

Cost: a few checks per primitive, chosen to cover every defect and one passing claim of each
primitive the library offers (a full audit of each is ``tools/publish_audits.py``'s job).
"""
import re
from pathlib import Path

import pytest

from reflip.adapters.peer_defects import DEFECTS, explain
from reflip.adapters.peers import PEERS, library_version, load_peer
from reflip.audit import check_implementation
from reflip.audit.adapter import load_impl

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]

# library -> {check id: {dtype: defect key, or "pass"}}; a check with one value for both dtypes
# is written once.
EXPECTED = {
    "deel-torchlip": {
        "group_sort.sorted_permutation": "negative-dim",
        "group_sort.isometry_ties": "tie-gradient-summed",
        "bjorck.spectral_ties": "bjorck-extra-step",
        "bjorck.polar": "bjorck-early-stop",
        "bjorck.fd": "bjorck-detached",
        "bjorck.transpose": "pass",
        "spectral_normalize.converged": {"float32": "sigma-plus-eps", "float64": "spectral-float64"},
    },
    "orthogonium": {
        "group_sort.isometry_ties": "tie-gradient-averaged",
        "group_sort.matches_reflip": "pass",
        "bjorck.matches_reflip": "pass",
        "bjorck.fd": "pass",
        "spectral_normalize.converged": {"float32": "pass", "float64": "power-iteration-float64"},
    },
    "monotonicnetworks": {
        "group_sort.batch_axis": "negative-axis",
        "group_sort.fd": "pass",
        "row_scale.matches_reflip": "pass",
        "row_scale.fd": "pass",
    },
}


def _library(name):
    pytest.importorskip({"deel-torchlip": "deel.torchlip", "jax-port": "jax"}.get(name, name))
    return load_peer(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_library_report(name):
    """Each selected check of the library's audit ends as the catalogue expects: failed and
    attributed to the named defect, or passed."""
    adapter = _library(name)
    expected = EXPECTED[name]
    primitives = sorted({check.split(".")[0] for check in expected})
    report = check_implementation(adapter, primitives=primitives, checks=sorted(expected), timeout=300)
    got, want = {}, {}
    for r in report.results:
        verdict = expected[r.claim.id]
        want[r.claim.id, r.dtype] = verdict if isinstance(verdict, str) else verdict[r.dtype]
        if r.status == "fail":
            defect = explain(name, r)
            got[r.claim.id, r.dtype] = defect.key if defect else f"unexplained: {r.error[:300]}"
        else:
            got[r.claim.id, r.dtype] = r.status
    assert got == want, report.to_markdown()


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: f"{d.library}:{d.key}")
def test_catalogue_snippet_reproduces(defect, capsys):
    """Every snippet runs without reflip and its closing assert (the defect is there) holds."""
    _library(defect.library)
    exec(compile(defect.snippet, f"<{defect.library}:{defect.key}>", "exec"), {"__name__": "__snippet__"})
    assert "reproduced" in capsys.readouterr().out


def _published():
    for path in sorted((ROOT / "docs" / "audits").glob("*.md")):
        for name in PEERS:
            if path.stem.startswith(name + "-"):
                yield name, path.stem[len(name) + 1:], path


@pytest.mark.parametrize("name, version, path", list(_published()), ids=lambda v: str(getattr(v, "name", v)))
def test_published_audit_snippets_run(name, version, path, capsys):
    """The published audit of the installed version: each reproduction in it runs and shows its
    defect, and each defect it names is in the catalogue."""
    _library(name)
    if library_version(PEERS[name][1]) != version:
        pytest.skip(f"{path.name} records {name} {version}, not the installed version")
    text = path.read_text(encoding="utf-8")
    snippets = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    keys = re.findall(r'<a id="([^"]+)"></a>', text)
    assert len(snippets) == len(keys)
    catalogue = {d.key for d in DEFECTS if d.library == name}
    assert set(keys) <= catalogue
    for key, snippet in zip(keys, snippets, strict=True):
        exec(compile(snippet, f"<{path.name}:{key}>", "exec"), {"__name__": "__snippet__"})
        assert "reproduced" in capsys.readouterr().out, key


def test_every_library_has_a_published_audit():
    names = {name for name, _, _ in _published()}
    assert names == set(PEERS)


def test_short_names_resolve():
    """``reflip audit --impl deel-torchlip`` and the others: load_impl knows the short names."""
    for name in PEERS:
        try:
            adapter = load_impl(name)
        except ImportError:  # a library this environment lacks
            continue
        assert getattr(adapter, "name", "").startswith(name.split("-")[0]) or name == "jax-port"
    with pytest.raises(ValueError, match="deel-torchlip"):
        load_impl("deel_torchlip")  # no colon, no short name: the message lists the short names


def test_adapters_call_the_library(monkeypatch):
    """The adapters wrap the libraries' own functions: replacing the library's function changes
    what the adapter returns (a re-implementation would not notice)."""
    import numpy as np
    import torch

    torchlip = pytest.importorskip("deel.torchlip.functional")
    monkeypatch.setattr(torchlip, "group_sort", lambda x, k, dim=1: torch.zeros_like(x))
    out = load_peer("deel-torchlip").group_sort(np.array([2.0, 1.0]), 2, axis=0)
    assert np.array_equal(out, [0.0, 0.0])


def test_publish_lists_a_failure_the_catalogue_does_not_explain():
    """A planted defect no catalogue entry describes (a descending sort behind orthogonium's
    name) is published as unexplained, in the audit and in the README cell, never dropped."""
    import importlib.util

    import torch

    from reflip.adapters import TorchAdapter

    spec = importlib.util.spec_from_file_location("publish_audits", ROOT / "tools" / "publish_audits.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)

    def descending(x, k, axis=-1):
        x = x.movedim(axis, -1)
        y = torch.sort(x.reshape(*x.shape[:-1], -1, k), dim=-1, descending=True, stable=True).values
        return y.reshape(x.shape).movedim(-1, axis)

    adapter = TorchAdapter(name="planted", group_sort=descending)
    report = check_implementation(adapter, primitives=["group_sort"], checks=["group_sort.matches_reflip"],
                                  dtypes=["float64"], shrink=False)
    text, _, cells = publish.render("orthogonium", adapter, report)
    assert "## Failures not explained" in text and "`group_sort.matches_reflip` (float64)" in text
    assert cells == {"group_sort": "FAIL: a failure not explained [GS-4]"}
