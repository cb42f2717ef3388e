"""Test support shipped with the package so that users can run reflip's suite on their own
implementations: backend cases, hypothesis strategies and a library of broken implementations
(mutants) that the suite must catch."""
