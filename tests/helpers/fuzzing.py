"""The hypothesis settings every fuzz test shares (tests/test_fuzz.py, tests/test_studio_fuzz.py).

A longer hunt than CI's: CCVAE_FUZZ_SCALE=20 tries 20 times as many examples; CCVAE_FUZZ_RANDOM=1
new ones on every run (hypothesis then prints how to reproduce a failure)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("CCVAE_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("CCVAE_FUZZ_RANDOM") == "1"


def fuzz(n: int):
    """hypothesis settings: `n` examples (times SCALE), the same ones on every run unless RANDOM."""
    return settings(max_examples=max(1, round(n * SCALE)), derandomize=not RANDOM, database=None,
                    deadline=None, print_blob=RANDOM,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large])
