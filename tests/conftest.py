"""Hypothesis runs derandomized: every run (and CI) draws the same examples, so a result does
not depend on the day; widen coverage by raising max_examples, not by reseeding."""

from hypothesis import settings

settings.register_profile("rsim", derandomize=True, print_blob=True)
settings.load_profile("rsim")
