"""The documentation and the packaging say what the code does: the version has one source and
the installed metadata agrees with it, the licence file exists, every relative link and cited
proof label resolves, CI finds the README's test command, the README's module map lists every
public module, the conventions table names values the code accepts with the code's defaults,
and the quick loop `-m "not meta"` leaves out every meta-test."""
from __future__ import annotations

import importlib.metadata
import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reflip
from tests.test_proofs import LABEL, defined

try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: Markdown read by people: the README, docs/, the benchmarks' how-to and results, the proofs.
DOCS = sorted({ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").rglob("*.md"),
               *(ROOT / "proofs").glob("*.md"), *ROOT.glob("CONTRIBUTING.md")})

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def test_version_has_one_source_and_the_metadata_agrees():
    project = PYPROJECT["project"]
    assert "version" not in project, "pyproject.toml states a version: it belongs in reflip/__init__.py only"
    assert "version" in project.get("dynamic", [])
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "reflip.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", reflip.__version__)
    # The installed distribution was built from that attribute (reinstall after a version bump).
    assert importlib.metadata.version("reflip") == reflip.__version__


def test_licence_file_matches_the_declared_licence():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the reflip developers" in text
    assert PYPROJECT["project"]["license"] == "MIT"
    assert "LICENSE" in PYPROJECT["project"]["license-files"]


def _slug(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path):
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", path.read_text(encoding="utf-8"), re.M)}


def _without_code(text):
    """The text outside fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(_without_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading '#{anchor}')")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"


def test_labels_cited_in_the_docs_exist():
    labels = defined()
    missing = {f"[{label}] in {doc.relative_to(ROOT)}" for doc in DOCS if doc.parent.name != "proofs"
               for label in LABEL.findall(doc.read_text(encoding="utf-8")) if label not in labels}
    assert not missing, sorted(missing)


def test_ci_finds_the_readme_test_command():
    """The exact awk program of .ci/run, run on the README: one command line, which installs
    the test extra and runs pytest."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (program,) = re.findall(r"^command=\$\((awk .*) README\.md\)$", ci, re.M)
    out = subprocess.run(["bash", "-c", f"{program} README.md"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.count("\n") == 1, out
    assert out.startswith('python -m pip install -e ".[test]"') and "python -m pytest" in out, out


def test_readme_module_map_lists_every_public_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Module map", 1)[1].split("\n## ", 1)[0]
    mapped = set(re.findall(r"^\| `reflip\.(\w+)`", table, re.M))
    package = ROOT / "reflip"
    public = {p.stem for p in package.glob("*.py")}
    public |= {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    # cli is the `reflip` command, which the README's two commands show; dunder and private
    # modules are not public (the fast paths are listed all the same).
    public = {m for m in public if not m.startswith("_") and m != "cli"}
    assert public <= mapped, f"modules missing from the README's module map: {sorted(public - mapped)}"
    assert mapped <= public | {"_fast"}, f"the module map names modules that do not exist: {sorted(mapped - public)}"


# ----------------------------------------------------------------------------------------------
# docs/conventions.md: the derivative-convention table against the code

_PUBLIC = {"linf_project": (reflip.linf_project_fwd, reflip.linf_project_bwd),
           "bjorck": (reflip.bjorck_fwd, reflip.bjorck_bwd),
           "spectral_normalize": (reflip.spectral_normalize_fwd, reflip.spectral_normalize_bwd)}


def _convention_rows():
    text = (ROOT / "docs" / "conventions.md").read_text(encoding="utf-8")
    table = text.split("## Which derivative", 1)[1]
    rows, primitive, parameter = [], None, None
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| ") else None
        if not cells or cells[0] == "primitive":
            continue
        if cells[0]:
            primitive = re.match(r"`(\w+)`", cells[0]).group(1)
            parameter = cells[1].strip("`")
        value = re.match(r'`"(\w+)"`', cells[2]).group(1)
        rows.append((primitive, parameter, value, "(default" in cells[2]))
    return rows


def test_conventions_table_covers_the_three_parameters():
    rows = _convention_rows()
    assert {(p, q) for p, q, _, _ in rows} == {("linf_project", "threshold"), ("bjorck", "backward"),
                                              ("spectral_normalize", "convention")}
    for primitive in _PUBLIC:
        assert sum(default for p, _, _, default in rows if p == primitive) == 1, primitive


@pytest.mark.parametrize("row", _convention_rows(), ids=lambda r: f"{r[0]}-{r[2]}")
def test_conventions_table_matches_the_code(row):
    """Each documented value runs through fwd and bwd, the one marked default is the public
    function's default, and the forward pass does not depend on the value."""
    primitive, parameter, value, is_default = row
    fwd, bwd = _PUBLIC[primitive]
    default = inspect.signature(fwd).parameters[parameter].default
    assert (default == value) == is_default, (primitive, parameter, value, default)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    w = q * np.linspace(1.0, 2.0, 4)  # well conditioned: the implicit Björck rule applies
    y, res = fwd(w, **{parameter: value})
    y_ref, _ = fwd(w)
    np.testing.assert_array_equal(y, y_ref)
    assert bwd(res, np.ones_like(y)).shape == w.shape


def test_quick_loop_leaves_out_every_meta_test():
    """`-m "not meta"` (docs/development.md) selects nothing under tests/meta, however a file
    there is written: tests/meta/conftest.py marks every test it collects."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-m", "not meta", "tests/meta"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 5, out.stdout[-2000:] + out.stderr[-2000:]  # 5: no tests collected
    assert re.search(r"\d+ deselected", out.stdout), out.stdout[-2000:]


def test_readme_forward_backward_example_runs():
    """The README's first example, as written (both code blocks of its section, in order)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## One primitive, forward and backward", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    assert len(blocks) == 2
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    # The VJP permutes the cotangent [GS-4]: a cotangent of ones comes back as ones.
    np.testing.assert_array_equal(namespace["x_bar"], np.ones_like(namespace["x"]))
    assert namespace["g"].shape == namespace["x"].shape


def _first_python_block(name):
    text = (ROOT / "docs" / name).read_text(encoding="utf-8")
    return re.search(r"^```python\n(.*?)^```", text, re.M | re.S).group(1)


def test_networks_example_runs_and_holds_its_comments():
    namespace = {}
    exec(compile(_first_python_block("networks.md"), "docs/networks.md", "exec"), namespace)
    # "4.0: the product of the layers' norms": orthonormal Björck layers times Scale(4).
    assert abs(float(namespace["L"]) - 4.0) < 1e-4


def test_universality_example_runs_and_holds_its_comments():
    namespace = {}
    exec(compile(_first_python_block("universality.md"), "docs/universality.md", "exec"), namespace)
    result, f = namespace["result"], namespace["f"]
    assert result.n_points == 25  # "interpolates f on a delta-net (25 points)"
    x = np.array([[0.5, 0.5]])
    assert abs(float(result.network(x)[0, 0]) - float(f(x)[0])) <= result.error_bound  # "within 2 delta"
