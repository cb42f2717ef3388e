"""Proof labels and citations stay in step: every label cited in code or tests is defined in
proofs/, and every defined label is cited by at least one check (a test in tests/, or a claim
of reflip/audit/, which tests/audit/test_claims.py runs)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABEL = re.compile(r"\[([A-Z]{2,4}-\d+)\]")
HEADING = re.compile(r"^#{2,4} \[([A-Z]{2,4}-\d+)\]", re.M)


def defined():
    labels = {}
    for path in sorted((ROOT / "proofs").glob("*.md")):
        for label in HEADING.findall(path.read_text(encoding="utf-8")):
            assert label not in labels, f"{label} defined in {labels.get(label)} and {path.name}"
            labels[label] = path.name
    return labels


def cited(*folders):
    out = {}
    for path in sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py")):
        for label in LABEL.findall(path.read_text(encoding="utf-8")):
            out.setdefault(label, set()).add(str(path.relative_to(ROOT)))
    return out


def test_labels_are_defined_once_and_numbered_densely():
    labels = defined()
    assert labels, "no labels found in proofs/"
    by_prefix = {}
    for label in labels:
        prefix, number = label.rsplit("-", 1)
        by_prefix.setdefault(prefix, []).append(int(number))
    for prefix, numbers in by_prefix.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"{prefix} labels skip a number"


def test_every_citation_exists():
    labels = defined()
    for folder in ("reflip", "tests", "benchmarks"):
        for label, files in cited(folder).items():
            assert label in labels, f"[{label}] cited in {sorted(files)} but defined nowhere in proofs/"


def test_every_label_is_tested():
    tested = cited("tests", "reflip/audit")
    untested = sorted(set(defined()) - set(tested))
    assert not untested, f"labels no test cites: {untested}"
