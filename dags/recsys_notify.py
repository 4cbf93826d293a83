"""Failure notifications for the recsys DAGs: one Airflow notifier, routed by environment.

``RECSYS_NOTIFY`` picks the channels, comma-separated: ``log`` (default: one ERROR line in the
task's log), ``email`` (``RECSYS_NOTIFY_EMAIL`` through the SMTP provider's ``SmtpNotifier`` and
connection ``RECSYS_NOTIFY_SMTP_CONN_ID``) and ``slack`` (the Slack provider's ``SlackNotifier``,
connection ``RECSYS_NOTIFY_SLACK_CONN_ID``, channel ``RECSYS_NOTIFY_SLACK_CHANNEL``). A channel whose
provider is not installed or that is not configured says so in the log instead of failing the
callback; the failure itself is always logged. Used as ``on_failure_callback`` of every task.

Not a DAG: Airflow puts the DAG folder on ``sys.path``, so the DAG files import it by name.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier

from recsys_tasks.settings import RecsysSettings

log = logging.getLogger("recsys.notify")

CHANNELS = ("log", "email", "slack")


def failure_message(context: Any) -> tuple[str, str]:
    """``(subject, body)`` naming the failed task, its run and the exception."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    try_number = getattr(ti, "try_number", None)
    exc = context.get("exception")
    reason = f"{type(exc).__name__}: {exc}" if exc is not None else "no exception recorded (killed, timed out or marked failed)"
    subject = f"[recsys] {dag_id}.{task_id} failed in run {run_id}"
    lines = [
        f"Task {task_id} of DAG {dag_id} failed.",
        f"Run: {run_id}" + (f" (try {try_number})" if try_number else ""),
        f"Reason: {reason}",
    ]
    if (logical_date := context.get("logical_date")) is not None:
        lines.append(f"Logical date: {logical_date}")
    if (url := getattr(ti, "log_url", None)) is not None:
        lines.append(f"Log: {url}")
    return subject, "\n".join(lines)


class RecsysFailureNotifier(BaseNotifier):
    """Reports a failed task to the channels of ``RECSYS_NOTIFY`` (read when the callback runs)."""

    def __init__(self, channels: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = channels

    @staticmethod
    def _channels(settings: RecsysSettings) -> list[str]:
        chosen = list(settings.notify) or ["log"]
        for unknown in sorted(set(chosen) - set(CHANNELS)):
            log.error("RECSYS_NOTIFY names an unknown channel %r (choose from %s); it is ignored", unknown, ", ".join(CHANNELS))
        return [c for c in chosen if c in CHANNELS]

    def notify(self, context: Any) -> None:
        subject, body = failure_message(context)
        # The failure is always in the log, whatever else is configured.
        log.error("%s\n%s", subject, body)
        settings = RecsysSettings() if self.channels is None else RecsysSettings(notify=self.channels)
        for channel in self._channels(settings):
            if channel == "email":
                self._email(context, subject, body, settings)
            elif channel == "slack":
                self._slack(context, subject, body, settings)

    def _email(self, context: Any, subject: str, body: str, settings: RecsysSettings) -> None:
        to = list(settings.notify_email)
        if not to:
            log.error("RECSYS_NOTIFY includes email but RECSYS_NOTIFY_EMAIL is empty: no email was sent")
            return
        try:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier
        except ImportError:
            log.error("RECSYS_NOTIFY includes email but apache-airflow-providers-smtp is not installed: no email was sent")
            return
        html = "<pre>" + body.replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
        SmtpNotifier(
            to=to, subject=subject, html_content=html, smtp_conn_id=settings.notify_smtp_conn_id
        ).notify(context)
        log.info("failure email sent to %s", ", ".join(to))

    def _slack(self, context: Any, subject: str, body: str, settings: RecsysSettings) -> None:
        try:
            from airflow.providers.slack.notifications.slack import SlackNotifier
        except ImportError:
            log.error("RECSYS_NOTIFY includes slack but apache-airflow-providers-slack is not installed: no Slack message was sent")
            return
        SlackNotifier(
            slack_conn_id=settings.notify_slack_conn_id,
            channel=settings.notify_slack_channel,
            text=f"*{subject}*\n{body}",
        ).notify(context)
        log.info("failure posted to Slack")
