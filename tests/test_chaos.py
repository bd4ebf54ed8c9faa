"""The chaos run of bench/chaos.py, shortened: killed consumers and a cut queue lose nothing."""

from __future__ import annotations

import subprocess
import sys

from webapp.settings import PROJECT_ROOT


def test_short_chaos_run_loses_nothing(environment: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "bench/chaos.py", "--tasks", "60", "--seconds", "15"],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=600,
    )
    report = result.stdout
    assert result.returncode == 0, report + result.stderr[-3000:]
    for line in ("tasks lost: 0", "tasks stuck: 0", "tasks run twice: 0",
                 "outcomes that do not match the status: 0"):
        assert line in report
