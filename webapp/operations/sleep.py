"""The diagnostic kind: waits in steps, checkpointing between them, to try the whole loop."""

from __future__ import annotations

import time
from typing import Any

from webapp.core.kinds import Field, task_kind
from webapp.core.models import MAX_TEXT
from webapp.core.runtime import OperationError, TaskContext, TransientError


def _describe(params: dict[str, Any]) -> str:
    seconds, steps = params["seconds"], params["steps"]
    text = f"Sleep {seconds:g} s in {steps} step{'s' if steps != 1 else ''}"
    return text + (" and then fail" if params["fail"] else "")


@task_kind(
    "sleep",
    title="Sleep (diagnostic)",
    summary="Wait in steps, to try the whole loop: for administrators and tests.",
    for_admins=True,
    describe=_describe,
    fields=(
        Field("seconds", float, "Seconds", "How long to wait in all.", default=10.0,
              minimum=0, maximum=86400),
        Field("steps", int, "Steps", "How many checkpoints to wait in.", default=10,
              minimum=1, maximum=100000),
        Field("fail", str, "Fail with", "If given, the task fails with this message at the end.",
              default="", max_length=MAX_TEXT),
        Field("flaky", int, "Flaky attempts", "The first this many attempts fail with a "
              "transient error, to see retries.", default=0, minimum=0, maximum=10),
    ),
    max_attempts=3,
    retry_delay=1.0,
    retry_safe=True,
)
def sleep(params: dict[str, Any], context: TaskContext) -> str:
    seconds, steps = params["seconds"], params["steps"]
    step = seconds / steps
    started = time.monotonic()
    for done in range(1, steps + 1):
        context.checkpoint()
        # Sleep to the step's deadline so checkpoint overhead does not add up.
        time.sleep(max(0.0, started + done * step - time.monotonic()))
        context.progress(done / steps, f"Step {done} of {steps}")
        context.log(f"Step {done} of {steps} done")
    context.checkpoint()
    if context.attempt <= params["flaky"]:
        raise TransientError(f"Flaky on purpose (attempt {context.attempt})")
    if params["fail"]:
        raise OperationError(params["fail"])
    return f"Slept {seconds:g} s in {steps} step{'s' if steps != 1 else ''}"
