"""benchmarks/gpu_check.sh --dry-run: every step of the GPU check on the CPU (about 2 minutes)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_on_the_cpu():
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                         text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "skipped" in res.stdout and "| 4 | fp32 | off |" in res.stdout and "== done" in res.stdout
