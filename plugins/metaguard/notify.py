"""An Airflow notifier for MetaGuard failures that only writes a log line.

It is the hook for real alerting: subclass ``FailureLogNotifier`` and extend
``notify`` to page or post to a chat channel, then pass an instance as a task's
or a DAG's ``on_failure_callback``. docs/deploy.md describes where each kind of
callback runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow.sdk import BaseNotifier

from metaguard.dagkit import log_failure


class FailureLogNotifier(BaseNotifier):
    """Notifier that logs MetaGuard's one-line failure summary."""

    def notify(self, context: Mapping[str, object]) -> None:
        """Log the DAG, task, date, try number and reason of the failure."""
        log_failure(context)
