"""Reading task records: success is decided from status, pexit and outputs (pure)."""

from __future__ import annotations

import pytest

from batch_runner.wiro.records import Task, as_int, as_time

DONE = {
    "id": "2221",
    "status": "task_postprocess_end",
    "outputs": [{"name": "0.mp4", "url": "https://cdn.example/0.mp4", "size": "202472"}],
}


@pytest.mark.parametrize(
    ("changes", "succeeded"),
    [
        ({}, True),  # no pexit at all, as in the API page's Detail example: judged by outputs
        ({"pexit": "0"}, True),
        ({"pexit": 0}, True),
        ({"pexit": "1", "debugerror": "model refused"}, False),
        ({"pexit": "0", "outputs": []}, False),
        ({"status": "task_cancel"}, False),
        ({"status": "task_error"}, False),
        ({"status": "task_output"}, False),
    ],
)
def test_success_needs_terminal_status_outputs_and_no_failing_exit(
    changes: dict[str, object], succeeded: bool
) -> None:
    task = Task.from_api({**DONE, **changes})
    assert task.succeeded is succeeded
    if not succeeded and task.is_terminal:
        assert task.failure_reason()


def test_failure_reasons_carry_the_service_text() -> None:
    failed = Task.from_api({**DONE, "pexit": "1", "outputs": [], "debugerror": "NSFW"})
    assert failed.failure_reason() == "generation failed (pexit 1): NSFW"
    cancelled = Task.from_api({**DONE, "status": "task_cancel", "debugerror": "by the system"})
    assert cancelled.failure_reason().startswith("cancelled on the service")


def test_loose_scalars() -> None:
    assert as_int("202472") == 202472 and as_int("6.0000") == 6 and as_int("nan") is None
    assert as_int(True) is None and as_int(None) is None
    assert as_time("0") is None and as_time("1734513807") == 1734513807.0
    assert as_time("2026-07-24 09:10:11") is not None
