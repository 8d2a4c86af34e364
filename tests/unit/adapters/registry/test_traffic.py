"""The tool's own registry traffic, counted for the report: a run's meter, and when it can't say."""

from __future__ import annotations

from typing import Any

from provenance_tasks.adapters.registry import keepalive
from provenance_tasks.adapters.registry.traffic import Traffic
from provenance_tasks.steps.report_merge import added


def test_a_meter_counts_what_was_sent_while_it_was_open() -> None:
    traffic = Traffic()
    traffic.count(10)  # before the run: not its own
    meter = traffic.meter()
    traffic.count(0)
    traffic.count(4096)
    assert meter.read()["requests"] == 2
    assert meter.read()["uploaded_bytes"] == 4096
    meter.close()


def test_two_runs_open_at_once_say_they_could_not_count_rather_than_each_others_number() -> None:
    traffic = Traffic()
    first = traffic.meter()
    second = traffic.meter()
    traffic.count(1)
    for meter in (first, second):
        read = meter.read()
        assert read["requests"] is None and "another run" in read["counted"]
    first.close()
    second.close()
    alone = traffic.meter()  # after both closed: counted again
    traffic.count(3)
    assert alone.read()["requests"] == 1


def test_each_request_the_pool_sends_is_counted_with_its_body(monkeypatch: Any) -> None:
    counted = Traffic()
    monkeypatch.setattr(keepalive, "TRAFFIC", counted)

    class Connection:
        def request(self, *args: Any, **kwargs: Any) -> None:
            pass

        def getresponse(self) -> None:
            return None

    keepalive._exchange(Connection(), "PUT", "/v2/x", {}, b"12345")  # type: ignore[arg-type]
    keepalive._exchange(Connection(), "HEAD", "/v2/x", {}, None)  # type: ignore[arg-type]
    headers = {"Content-Length": "700"}  # a layer streamed from disk
    keepalive._exchange(Connection(), "PUT", "/v2/y", headers, object())  # type: ignore[arg-type]
    assert (counted.requests, counted.uploaded_bytes) == (3, 705)


def report(traffic: dict[str, Any], task: str = "sign") -> dict[str, Any]:
    return {"status": "ok", "tasks": [{"task": task}], "steps": [], "registry_traffic": traffic}


def test_a_task_that_continues_the_run_adds_its_traffic_to_the_builds() -> None:
    build = report({"requests": 40, "uploaded_bytes": 9000, "counted": "x"}, "build")
    sign = report({"requests": 6, "uploaded_bytes": 0, "counted": "x"})
    merged = added(build, sign)["registry_traffic"]
    assert (merged["requests"], merged["uploaded_bytes"]) == (46, 9000)
    uncounted = report({"requests": None, "uploaded_bytes": None, "counted": "not counted"})
    assert added(build, uncounted)["registry_traffic"]["requests"] is None


def test_a_failed_task_leaves_the_builds_traffic_as_it_was() -> None:
    build = report({"requests": 40, "uploaded_bytes": 9000, "retried": 1, "counted": "x"}, "build")
    failed = {**report({"requests": 3, "uploaded_bytes": 0, "counted": "x"}), "status": "failed"}
    assert added(build, failed)["registry_traffic"] == build["registry_traffic"]
