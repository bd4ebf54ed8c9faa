"""The chaos runs of bench/chaos.py, shortened: killed consumers and a cut queue lose
nothing; on the scale-out configuration, neither do Redis and PostgreSQL outages."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

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


def test_short_scale_out_chaos_run_loses_nothing(request: pytest.FixtureRequest,
                                                 environment: dict[str, str]) -> None:
    if not request.config.getoption("--scale-out"):
        pytest.skip("the scale-out chaos run is part of `pytest --scale-out`")
    faults = ["postgres-stop", "consumers", "lost-message"]
    result = subprocess.run(
        [sys.executable, "bench/chaos.py", "--scale-out", "--faults", ",".join(faults)],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=600,
    )
    report = result.stdout
    assert result.returncode == 0, report + result.stderr[-3000:]
    # Each fault reports on its own launches, and none was lost, stuck or run twice.
    assert re.findall(r"^([\w-]+): ", report, re.MULTILINE)[:len(faults)] == faults, report
    checks = re.findall(r"lost (\d+), stuck (\d+), run twice (\d+), outcomes not matching (\d+)",
                        report)
    assert checks == [("0", "0", "0", "0")] * len(faults), report
    launched = re.findall(r"tasks launched (\d+)", report)
    assert len(launched) == len(faults) and all(int(n) > 0 for n in launched), report
