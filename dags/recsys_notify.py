"""Notifications of the recsys DAGs: one Airflow notifier and its channels, routed by environment.

``RECSYS_NOTIFY`` picks the channels, comma-separated: ``log`` (default: one line in the task's
log), ``email`` (``RECSYS_NOTIFY_EMAIL`` through the SMTP provider's ``SmtpNotifier`` and
connection ``RECSYS_NOTIFY_SMTP_CONN_ID``) and ``slack`` (the Slack provider's ``SlackNotifier``,
connection ``RECSYS_NOTIFY_SLACK_CONN_ID``, channel ``RECSYS_NOTIFY_SLACK_CHANNEL``). A channel whose
provider is not installed or that is not configured says so in the log instead of failing the
callback; the message itself is always logged.

What is sent: a failed task (``RecsysFailureNotifier``, the ``on_failure_callback`` of every task),
a late publication (``alert_once``, from ``recsys_freshness``: once per as-of date, remembered in the
Airflow Variable ``recsys_freshness_alerted``), a promotion and a rollback (``announce``, from the
``promote`` task of ``recsys_retrain`` and from ``recsys_rollback``).

Not a DAG: Airflow puts the DAG folder on ``sys.path``, so the DAG files import it by name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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

    def notify(self, context: Any) -> None:
        send(context, *failure_message(context), channels=self.channels)


def send(context: Any, subject: str, body: str, *, level: int = logging.ERROR, channels: str | None = None) -> None:
    """Log ``subject`` and ``body`` at ``level`` and send them to the other channels of ``RECSYS_NOTIFY``.

    ``channels`` overrides the environment (``"log,email"``). A provider's own error (SMTP or Slack
    unreachable) propagates: the caller decides whether that fails its task.
    """
    # The message is always in the log, whatever else is configured.
    log.log(level, "%s\n%s", subject, body)
    settings = RecsysSettings() if channels is None else RecsysSettings(notify=channels)
    for channel in _channels(settings):
        if channel == "email":
            _email(context, subject, body, settings)
        elif channel == "slack":
            _slack(context, subject, body, settings)


def announce(context: Any, subject: str, body: str) -> None:
    """:func:`send` an event (a promotion, a rollback) at INFO; a channel that fails is logged, never fails the task."""
    try:
        send(context, subject, body, level=logging.INFO)
    except Exception:  # the event happened; a notification that could not be sent must not undo or retry it
        log.exception("could not send the notification %r", subject)


#: The Airflow Variable that remembers the last as-of date a late publication was reported for.
ALERTED_VARIABLE = "recsys_freshness_alerted"


def alert_once(context: Any, as_of: str, subject: str, body: str) -> bool:
    """:func:`send` the late-publication alert for ``as_of`` unless it was sent already; whether it was sent now.

    The date is remembered in the Variable only after the channels took the message, so a channel
    that fails is retried by the next check rather than forgotten.
    """
    from airflow.sdk import Variable

    if Variable.get(ALERTED_VARIABLE, default=None) == as_of:
        log.info("the late publication of %s was reported already (Variable %s); not again", as_of, ALERTED_VARIABLE)
        return False
    send(context, subject, body, level=logging.ERROR)
    Variable.set(ALERTED_VARIABLE, as_of, description="Last as-of date recsys_freshness reported as late (one alert per date).")
    return True


def promotion_message(promoted: Mapping[str, Any], decision: Mapping[str, Any], context: Any) -> tuple[str, str]:
    """``(subject, body)`` announcing the promotion the ``promote`` task just made."""
    version, as_of = promoted["model_version"], promoted["champion_from"]
    if promoted.get("current", True):
        subject = f"[recsys] model {version} promoted: champion from as-of {as_of}"
        previous = promoted.get("previous") or "no champion (the first model)"
        lines = [f"Model {version} is the champion from as-of date {as_of} on; it replaces {previous}."]
    else:
        subject = f"[recsys] model {version} promoted for as-of {as_of} (backfill)"
        lines = [f"Model {version} is the champion of as-of {as_of} until the next period (a backfill); the current champion stays."]
    lines.append(f"Decision: {decision.get('reason', '?')}")
    return subject, "\n".join(lines + _run_lines(context))


def rollback_message(result: Mapping[str, Any], context: Any) -> tuple[str, str]:
    """``(subject, body)`` announcing a rollback made by ``recsys_rollback``."""
    version = result["champion"]
    republished = result.get("republished")
    lines = [f"An operator made model {version} the champion again."]
    if republished:
        lines.append(f"Republished as-of {republished.get('as_of', '?')} with it ({republished.get('users', '?')} users).")
    else:
        lines.append("Nothing was republished (no publication yet, or republish was off).")
    return f"[recsys] rollback: model {version} is champion again", "\n".join(lines + _run_lines(context))


def _run_lines(context: Any) -> list[str]:
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    lines = [f"Run: {dag_id} {context.get('run_id') or getattr(ti, 'run_id', '?')}"]
    if (url := getattr(ti, "log_url", None)) is not None:
        lines.append(f"Log: {url}")
    return lines


def _channels(settings: RecsysSettings) -> list[str]:
    chosen = list(settings.notify) or ["log"]
    for unknown in sorted(set(chosen) - set(CHANNELS)):
        log.error("RECSYS_NOTIFY names an unknown channel %r (choose from %s); it is ignored", unknown, ", ".join(CHANNELS))
    return [c for c in chosen if c in CHANNELS]


def _email(context: Any, subject: str, body: str, settings: RecsysSettings) -> None:
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
    SmtpNotifier(to=to, subject=subject, html_content=html, smtp_conn_id=settings.notify_smtp_conn_id).notify(context)
    log.info("email sent to %s", ", ".join(to))


def _slack(context: Any, subject: str, body: str, settings: RecsysSettings) -> None:
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
    log.info("posted to Slack %s", settings.notify_slack_channel)
