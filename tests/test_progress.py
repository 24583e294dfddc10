"""Log reporters write in batches, never losing or reordering a line."""

from __future__ import annotations

import io
import json

from batch_runner.engine.reporting import RunEvent
from batch_runner.report.progress import JsonReporter, LineReporter


class Counting(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_info_lines_are_batched_and_an_error_goes_out_at_once_with_them() -> None:
    stream = Counting()
    rep = LineReporter(stream)
    for i in range(100):
        rep.event(RunEvent("submitted", f"job-{i}", f"submitted as task {i}"))
    assert stream.writes < 10  # not one write per line
    rep.event(RunEvent("failed", "job-x", "it broke", level="error"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 101 and lines[-1].endswith("[job-x] it broke")
    assert [line.split("task ")[1] for line in lines[:100]] == [str(i) for i in range(100)]


def test_the_progress_tick_and_close_write_what_waits() -> None:
    stream = Counting()
    rep = JsonReporter(stream)
    rep.event(RunEvent("submitted", "a", "one"))
    assert stream.getvalue() == ""  # waiting for the batch
    rep.update({"succeeded": 0}, total=2, spent=0.0)
    assert json.loads(stream.getvalue().splitlines()[0])["job"] == "a"
    rep.event(RunEvent("succeeded", "b", "two"))
    rep.close()
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events[0] == "submitted" and events[-1] == "succeeded"
