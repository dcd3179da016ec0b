"""The failure notifier that docs/deploy.md offers as the alerting hook."""

from __future__ import annotations

import logging
import types

from metaguard.notify import FailureLogNotifier


def test_notifier_logs_failure_summary(caplog):
    task_instance = types.SimpleNamespace(
        dag_id="metaguard_nightly_scoring", task_id="locate", try_number=1
    )
    context = {
        "task_instance": task_instance,
        "params": {"date": "2024-01-08"},
        "exception": FileNotFoundError("partition not found\ntraceback lines"),
    }
    with caplog.at_level(logging.ERROR, logger="metaguard.dagkit"):
        FailureLogNotifier()(context)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "MetaGuard task failed: dag=metaguard_nightly_scoring task=locate "
        "date=2024-01-08 try=1 reason=partition not found"
    ]
