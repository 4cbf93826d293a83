"""
### recsys_retrain: nightly fine-tuning of the sequence recommender

Per data interval (nightly by default; backfills and manual runs from the UI work the same way):

1. **extract** the item catalogue and the interval's behaviour events plus `window.history_days` of
   history from the `recsys_warehouse` connection into a Parquet snapshot: `extract_events` is mapped
   over `warehouse.extract_shards` user shards (computed by the warehouse), one stream each;
2. **validate** them with Great Expectations: a blocking failure stops the run here, with the
   failed expectations named, and nothing downstream changes;
3. **train** the challenger: the champion warm-started and fine-tuned on events before the cutoff
   (or trained from scratch on the first night / with `full_retrain`);
4. **evaluate** challenger, champion and most-popular on the same temporal holdout and **decide**;
5. **promote** the challenger or **keep the champion** (a visible branch), then
6. **publish** the champion's per-user top-K for the run's as-of date, atomically, into
   `<output_schema>.recommendations` (see `latest_recommendations`): `plan_publish` splits the users
   into `publish.shards` user-hash shards, `publish_shard` is mapped over them (parallel on as many
   workers) and stages each, and `publish` checks the shards and swaps them in as one publication;
   then its item-to-item neighbours go into `<output_schema>.similar_items`;
7. **cleanup** what the `retention` config says has expired (old partitions, run directories, model
   directories; never what a rollback needs). It runs after a successful night (after a dry run it
   only logs what it would delete); its own errors are logged and never fail the run.

Configuration: `$RECSYS_CONFIG` (YAML/JSON, see `docs/configuration.md`), overridden by the params
of the trigger form. Artifacts: `<artifact_root>/recsys_retrain/<as_of>/<run_id>/` (a local path or an
object-store URL; tasks hand each other URIs).

Schedule: the cron `$RECSYS_SCHEDULE`, or, when `$RECSYS_SCHEDULE_ASSET` names an upstream asset (the
behaviour-events load), every update of that asset; the interval then comes from the asset event's
extra (`interval_start`/`interval_end` or `as_of`), else the day ending at the event. `publish`
updates the asset `$RECSYS_RECOMMENDATIONS_ASSET` (downstream DAGs can schedule on it). Train,
evaluate and publish_shard run on queue `$RECSYS_GPU_QUEUE` in pool `$RECSYS_GPU_POOL` (when set). Failed
tasks are reported by `recsys_notify` (`$RECSYS_NOTIFY`), and so is each promotion; `recsys_freshness`
reports a publication missing at `$RECSYS_PUBLISH_DEADLINE`. Operations: `docs/operations.md`.

#### Backfills (Trigger → Backfill)
- **The dialog takes logical dates; a run publishes the day after.** With the daily schedule, the
  run of logical date L reads the interval [L, L + 1 day) and publishes as-of date **L + 1 day**: to
  republish as-of dates 2026-01-26 … 2026-02-01, backfill logical dates 2026-01-25 … 2026-01-31.
- **The params apply to every run of the backfill.** Leave `as_of` empty: set, every run processes
  that one date instead of its own interval. `force_promote` promotes *each* date's challenger
  whatever its metrics; for one date, trigger that date alone instead.
- **Pause and unpause.** Airflow runs no task of a paused DAG, backfills included, so the dialog
  pre-checks "Unpause recsys_retrain on trigger". Unpausing also starts the nightly schedule: the
  scheduler at once creates the run of the newest complete interval (catchup is off), then one a
  night. Where only the backfill should run (the demo: its data ends on 2026-02-01, so that run has
  no events for its day and fails without publishing), pause the DAG again when the backfill is done.
- Each run is point in time: judged against and publishing with the champion of its own date; a
  backfilled challenger that wins takes its place in the past, never replacing today's champion.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task
from recsys_context import GPU, RECOMMENDATIONS, settings
from recsys_notify import RecsysFailureNotifier

DAG_ID = "recsys_retrain"
UPSTREAM = settings.schedule_asset


def _context(context: dict[str, Any]) -> Any:
    from recsys_context import run_context

    return run_context(context)


@dag(
    dag_id=DAG_ID,
    schedule=[Asset(UPSTREAM)] if UPSTREAM else CronDataIntervalTimetable(settings.schedule, timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["recsys", "training", "ml"],
    doc_md=__doc__,
    default_args={"retries": settings.task_retries, "retry_delay": timedelta(minutes=5), "owner": "recsys", "on_failure_callback": RecsysFailureNotifier()},
    params={
        "as_of": Param(None, type=["null", "string"], format="date", description="Process the day ending at this date (YYYY-MM-DD) instead of the run's data interval. Leave empty in a backfill: it applies to every run, which would all process this one date."),
        "epochs": Param(None, type=["null", "integer"], minimum=1, description="Training epochs for this run (default: config train.epochs / train.fine_tune_epochs)."),
        "history_days": Param(None, type=["null", "integer"], minimum=0, description="Days of history before the interval to read (default: config window.history_days)."),
        "top_k": Param(None, type=["null", "integer"], minimum=1, maximum=1000, description="Recommendations per user (default: config publish.top_k)."),
        "full_retrain": Param(False, type="boolean", description="Train from scratch instead of fine-tuning the champion."),
        "force_promote": Param(False, type="boolean", description="Promote tonight's challenger whatever its metrics. In a backfill it applies to every run: each date's challenger is promoted; trigger a single date instead."),
        "dry_run": Param(False, type="boolean", description="Train and evaluate only: no promotion, no publication."),
        "allow_shrink": Param(False, type="boolean", description="Publish even if it has far fewer users or rows than the previous date (publish.max_shrink_share); for a catalogue or audience that really shrank."),
    },
)
def recsys_retrain() -> None:
    @task
    def extract(**context: Any) -> list[dict[str, Any]]:
        from recsys_tasks import stages

        return stages.extract.plan(_context(context))

    # Mapped over the user shards of warehouse.extract_shards: one warehouse stream each, in parallel.
    @task
    def extract_events(shard: dict[str, Any], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        return stages.extract.run_shard(_context(context), shard)

    @task
    def validate(extracted: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        snapshot = stages.extract.complete(list(extracted))["snapshot"]
        return stages.validate.run(_context(context), snapshot)

    @task(**GPU, execution_timeout=timedelta(hours=6))
    def train(validated: dict[str, Any], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        return stages.train.run(_context(context), validated["snapshot"], full_retrain=context["params"]["full_retrain"])

    @task(**GPU)
    def evaluate(validated: dict[str, Any], trained: dict[str, Any], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        return stages.evaluate.run(
            _context(context), validated["snapshot"], trained["model_version"],
            force_promote=context["params"]["force_promote"], full_retrain=context["params"]["full_retrain"],
        )

    @task.branch
    def decide(evaluation: dict[str, Any], **context: Any) -> str:
        if context["params"]["dry_run"]:
            return "dry_run_done"
        return "promote" if evaluation["decision"]["outcome"] == "promote" else "keep_champion"

    @task
    def promote(evaluation: dict[str, Any], **context: Any) -> dict[str, Any]:
        from recsys_notify import announce, promotion_message

        from recsys_tasks import stages

        promoted = stages.promote.run(_context(context), evaluation["decision"])
        announce(context, *promotion_message(promoted, evaluation["decision"], context))
        return promoted

    @task
    def keep_champion(evaluation: dict[str, Any], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        return stages.promote.keep_champion(_context(context), evaluation["decision"])

    @task
    def dry_run_done(evaluation: dict[str, Any]) -> dict[str, Any]:
        return {"dry_run": True, "decision": evaluation["decision"]}

    @task(trigger_rule="none_failed_min_one_success")
    def plan_publish(validated: dict[str, Any], **context: Any) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowSkipException

        from recsys_tasks import stages

        if context["params"]["dry_run"]:
            raise AirflowSkipException("dry run: nothing is published")
        return stages.publish.plan(_context(context), validated["snapshot"])

    # Mapped over the user-hash shards (publish.shards): in parallel on as many workers.
    @task(**GPU)
    def publish_shard(shard: dict[str, Any], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        params = context["params"]
        return stages.publish.stage_shard(
            _context(context), shard, top_k=params["top_k"], allow_shrink=params["allow_shrink"] or None
        )

    @task(outlets=[RECOMMENDATIONS])
    def publish(staged: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        published = stages.publish.merge(_context(context), list(staged), allow_shrink=context["params"]["allow_shrink"] or None)
        context["outlet_events"][RECOMMENDATIONS].extra = {"as_of": published["as_of"], "model_version": published["model_version"]}
        return published

    @task(**GPU)
    def publish_similar_items(validated: dict[str, Any], published: dict[str, Any], **context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        return stages.similar_items.run(_context(context), validated["snapshot"])

    # none_failed: after publishing, or after a dry run (publish skipped); a failed night keeps everything.
    @task(trigger_rule="none_failed")
    def cleanup(**context: Any) -> dict[str, Any]:
        from recsys_tasks import stages

        # A dry-run night changes nothing: retention only logs what it would delete.
        return stages.cleanup.run(_context(context), dry_run=True if context["params"]["dry_run"] else None)

    validated = validate(extract_events.expand(shard=extract()))
    evaluation = evaluate(validated, train(validated))
    branch = decide(evaluation)
    outcomes = [promote(evaluation), keep_champion(evaluation)]
    branch >> [*outcomes, dry_run_done(evaluation)]
    planned = plan_publish(validated)
    outcomes >> planned
    published = publish(publish_shard.expand(shard=planned))
    publish_similar_items(validated, published) >> cleanup()


recsys_retrain()
