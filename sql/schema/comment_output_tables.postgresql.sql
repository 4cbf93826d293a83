-- Revision 0002 of the output schema (recsys_tasks/data/migrations/versions/0002_comments.py): what every
-- table, view and column means, for psql's \d+, BI tools and data catalogues. docs/dbt/sources.yml repeats
-- these texts for dbt (tests/recsys_tasks/data/test_migrations.py checks that the two agree).
-- Inputs: identifier {{schema}}. Idempotent: COMMENT ON replaces. Needs ownership of each object (the
-- owner role, a member of the publisher group that owns recommendations and similar_items).

COMMENT ON TABLE {{schema}}.model_registry IS 'One row per trained model version: lineage, training data window, artifact, configuration, holdout metrics and status. Exactly one row is champion (a unique partial index enforces it).';
COMMENT ON COLUMN {{schema}}.model_registry.model_version IS 'Identifier of the model version (primary key).';
COMMENT ON COLUMN {{schema}}.model_registry.parent_version IS 'The version this one was fine-tuned (warm-started) from; NULL when trained from scratch.';
COMMENT ON COLUMN {{schema}}.model_registry.kind IS 'Model family: transformer (item-id transformer), pretrained (a pretrained language model fine-tuned with LoRA; config.model.backbone names it), gru, or popularity.';
COMMENT ON COLUMN {{schema}}.model_registry.status IS 'candidate (trained, not yet judged), champion (publishes), rejected (lost its evaluation) or retired (a former champion).';
COMMENT ON COLUMN {{schema}}.model_registry.dag_id IS 'Airflow DAG that trained the version.';
COMMENT ON COLUMN {{schema}}.model_registry.run_id IS 'Airflow run that trained the version.';
COMMENT ON COLUMN {{schema}}.model_registry.as_of IS 'As-of date of the run that trained the version: its data ends at the start of this day (UTC).';
COMMENT ON COLUMN {{schema}}.model_registry.data_start IS 'Start (inclusive) of the events the version was trained on.';
COMMENT ON COLUMN {{schema}}.model_registry.data_end IS 'End (exclusive) of the events the version was trained on.';
COMMENT ON COLUMN {{schema}}.model_registry.artifact_uri IS 'Where the model directory is stored (a path or an object-store URI).';
COMMENT ON COLUMN {{schema}}.model_registry.checksum IS 'SHA-256 of the model directory, checked before every load.';
COMMENT ON COLUMN {{schema}}.model_registry.config IS 'Model and training configuration the version was trained with (JSON).';
COMMENT ON COLUMN {{schema}}.model_registry.metrics IS 'Holdout metrics of the version (JSON: segment and metric to value).';
COMMENT ON COLUMN {{schema}}.model_registry.holdout_users IS 'Number of holdout users the metrics were computed on.';
COMMENT ON COLUMN {{schema}}.model_registry.decision IS 'Why the version was promoted or rejected, in words.';
COMMENT ON COLUMN {{schema}}.model_registry.created_at IS 'When the version was registered.';
COMMENT ON COLUMN {{schema}}.model_registry.status_changed_at IS 'When status last changed.';
COMMENT ON COLUMN {{schema}}.model_registry.artifact_deleted_at IS 'When retention deleted the model directory (the row stays); NULL while the files exist.';

COMMENT ON TABLE {{schema}}.champion_periods IS 'The champion timeline: model_version publishes every as-of date from champion_from until the next period starts.';
COMMENT ON COLUMN {{schema}}.champion_periods.champion_from IS 'First as-of date of the period (primary key).';
COMMENT ON COLUMN {{schema}}.champion_periods.model_version IS 'The champion of the period (model_registry.model_version).';
COMMENT ON COLUMN {{schema}}.champion_periods.decision IS 'Why it became champion, in words.';
COMMENT ON COLUMN {{schema}}.champion_periods.recorded_at IS 'When the period was recorded.';

COMMENT ON TABLE {{schema}}.evaluations IS 'Holdout metrics of every model judged in a run, per role, user segment and metric.';
COMMENT ON COLUMN {{schema}}.evaluations.run_id IS 'Airflow run that evaluated the model.';
COMMENT ON COLUMN {{schema}}.evaluations.as_of IS 'As-of date of the run.';
COMMENT ON COLUMN {{schema}}.evaluations.model_version IS 'The model evaluated (model_registry.model_version, or the baseline''s name).';
COMMENT ON COLUMN {{schema}}.evaluations.role IS 'challenger (trained by the run), champion (the model it was judged against) or baseline (most-popular).';
COMMENT ON COLUMN {{schema}}.evaluations.segment IS 'Holdout users measured: all, or a segment by history length (new_users, short_history, long_history, new_items).';
COMMENT ON COLUMN {{schema}}.evaluations.metric IS 'Metric name, e.g. ndcg@10, hr@10, mrr@10, coverage@10.';
COMMENT ON COLUMN {{schema}}.evaluations.value IS 'Value of the metric for the segment.';
COMMENT ON COLUMN {{schema}}.evaluations.users IS 'Number of holdout users in the segment.';
COMMENT ON COLUMN {{schema}}.evaluations.created_at IS 'When the row was written.';

COMMENT ON TABLE {{schema}}.evaluation_comparisons IS 'How each challenger compared with the model it was judged against on the same holdout users: a paired-bootstrap interval of the relative change of the primary metric.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.run_id IS 'Airflow run that made the comparison.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.as_of IS 'As-of date of the run.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.challenger IS 'Model version of the challenger.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.reference IS 'Model version (or baseline name) it was compared with.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.reference_role IS 'champion or baseline.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.metric IS 'The metric compared (evaluation.primary_metric).';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.users IS 'Number of paired holdout users.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.confidence IS 'Confidence level of the interval, e.g. 0.95.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.relative_delta IS 'Relative change of the metric, challenger over reference (0.05 = 5% better).';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.ci_low IS 'Lower bound of the confidence interval of relative_delta.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.ci_high IS 'Upper bound of the confidence interval of relative_delta.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.challenger_mean IS 'Mean of the metric over the users, for the challenger.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.reference_mean IS 'Mean of the metric over the users, for the reference.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.resamples IS 'Number of bootstrap resamples.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.seed IS 'Random seed of the bootstrap, so the interval can be recomputed.';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.challenger_values IS 'Per-user metric values of the challenger (JSON array, holdout user order).';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.reference_values IS 'Per-user metric values of the reference (JSON array, holdout user order).';
COMMENT ON COLUMN {{schema}}.evaluation_comparisons.created_at IS 'When the row was written.';

COMMENT ON TABLE {{schema}}.validation_runs IS 'The verdict of each run''s data validation, and the volume of its interval.';
COMMENT ON COLUMN {{schema}}.validation_runs.run_id IS 'Airflow run that validated its data (primary key).';
COMMENT ON COLUMN {{schema}}.validation_runs.as_of IS 'As-of date of the run.';
COMMENT ON COLUMN {{schema}}.validation_runs.interval_events IS 'Number of events in the run''s data interval.';
COMMENT ON COLUMN {{schema}}.validation_runs.success IS 'True when no blocking expectation failed.';
COMMENT ON COLUMN {{schema}}.validation_runs.docs_uri IS 'Where the run''s Data Docs (HTML report) are stored; NULL when none were built.';
COMMENT ON COLUMN {{schema}}.validation_runs.created_at IS 'When the row was written.';

COMMENT ON TABLE {{schema}}.validation_results IS 'Every expectation outcome of every run''s data validation.';
COMMENT ON COLUMN {{schema}}.validation_results.run_id IS 'Airflow run that validated its data.';
COMMENT ON COLUMN {{schema}}.validation_results.as_of IS 'As-of date of the run.';
COMMENT ON COLUMN {{schema}}.validation_results.suite IS 'Expectation suite the expectation belongs to.';
COMMENT ON COLUMN {{schema}}.validation_results.expectation IS 'Expectation type.';
COMMENT ON COLUMN {{schema}}.validation_results.column_name IS 'Column the expectation checks; NULL for a table-level expectation.';
COMMENT ON COLUMN {{schema}}.validation_results.severity IS 'blocking (a failure stops the run), warning or info.';
COMMENT ON COLUMN {{schema}}.validation_results.success IS 'Whether the expectation held.';
COMMENT ON COLUMN {{schema}}.validation_results.observed_value IS 'What was observed (JSON).';
COMMENT ON COLUMN {{schema}}.validation_results.details IS 'The check''s key and what it found, in words.';
COMMENT ON COLUMN {{schema}}.validation_results.created_at IS 'When the row was written.';

COMMENT ON TABLE {{schema}}.publications IS 'One row per published as-of date, written in the same transaction as its recommendations.';
COMMENT ON COLUMN {{schema}}.publications.as_of IS 'As-of date of the publication (primary key).';
COMMENT ON COLUMN {{schema}}.publications.run_id IS 'Airflow run that published it.';
COMMENT ON COLUMN {{schema}}.publications.model_version IS 'Model version that ranked it (the champion of the as-of date).';
COMMENT ON COLUMN {{schema}}.publications.users IS 'Number of users with recommendations.';
COMMENT ON COLUMN {{schema}}.publications.rows IS 'Number of recommendation rows.';
COMMENT ON COLUMN {{schema}}.publications.top_k IS 'Recommendations per user.';
COMMENT ON COLUMN {{schema}}.publications.published_at IS 'When the publication was committed.';

COMMENT ON TABLE {{schema}}.recommendations IS 'Ranked recommendations per as-of date and user; one partition per as-of date, replaced whole by each publication.';
COMMENT ON COLUMN {{schema}}.recommendations.as_of IS 'As-of date of the publication.';
COMMENT ON COLUMN {{schema}}.recommendations.user_id IS 'User the item is recommended to.';
COMMENT ON COLUMN {{schema}}.recommendations.rank IS 'Position in the user''s list, from 1.';
COMMENT ON COLUMN {{schema}}.recommendations.item_id IS 'Recommended item.';
COMMENT ON COLUMN {{schema}}.recommendations.score IS 'Ranking score within the list: the model''s logit for model-ranked items, the trending count for trending slots. Compare only within one list.';
COMMENT ON COLUMN {{schema}}.recommendations.model_version IS 'Model version that ranked the list.';
COMMENT ON COLUMN {{schema}}.recommendations.run_id IS 'Airflow run that wrote the row.';
COMMENT ON COLUMN {{schema}}.recommendations.reason IS 'Why the item is in the list, in words for the user.';
COMMENT ON COLUMN {{schema}}.recommendations.generated_at IS 'When the list was ranked.';

COMMENT ON TABLE {{schema}}.similar_items IS 'Top-N most similar items per item (cosine of the champion''s item vectors); one partition per as-of date, replaced whole.';
COMMENT ON COLUMN {{schema}}.similar_items.as_of IS 'As-of date of the set.';
COMMENT ON COLUMN {{schema}}.similar_items.item_id IS 'Item the neighbours are for.';
COMMENT ON COLUMN {{schema}}.similar_items.rank IS 'Position among the item''s neighbours, from 1.';
COMMENT ON COLUMN {{schema}}.similar_items.similar_item_id IS 'A similar item.';
COMMENT ON COLUMN {{schema}}.similar_items.score IS 'Cosine similarity of the two items'' vectors.';
COMMENT ON COLUMN {{schema}}.similar_items.model_version IS 'Model version whose item vectors were compared.';

COMMENT ON TABLE {{schema}}.schema_version IS 'Digest of the baseline DDL file; read by pipeline code from before Alembic migrations (alembic_version holds the revision).';
COMMENT ON COLUMN {{schema}}.schema_version.id IS 'Always 1 (one row).';
COMMENT ON COLUMN {{schema}}.schema_version.version IS 'Digest of sql/schema/create_output_tables.<dialect>.sql.';
COMMENT ON COLUMN {{schema}}.schema_version.applied_at IS 'When the DDL was applied.';

COMMENT ON VIEW {{schema}}.latest_recommendations IS 'The recommendations of the newest publication (a publication row and its partition become visible together).';
COMMENT ON VIEW {{schema}}.latest_similar_items IS 'The newest complete set of similar items.';
COMMENT ON VIEW {{schema}}.champion IS 'The current champion''s registry row (exactly one once a model was promoted).';
COMMENT ON VIEW {{schema}}.champion_timeline IS 'Champion periods with their ends: model_version publishes the as-of dates [champion_from, champion_to).';
COMMENT ON COLUMN {{schema}}.champion_timeline.champion_from IS 'First as-of date of the period.';
COMMENT ON COLUMN {{schema}}.champion_timeline.champion_to IS 'First as-of date of the next period (exclusive end); NULL for the current period.';
COMMENT ON COLUMN {{schema}}.champion_timeline.model_version IS 'The champion of the period.';
COMMENT ON COLUMN {{schema}}.champion_timeline.decision IS 'Why it became champion, in words.';
COMMENT ON COLUMN {{schema}}.champion_timeline.recorded_at IS 'When the period was recorded.';

-- The views that select a table's rows carry that table's column comments.
DO $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT t.view_oid, a.attname, pg_catalog.col_description(t.table_oid, a.attnum) AS text
        FROM (VALUES ('{{schema}}.latest_recommendations'::regclass, '{{schema}}.recommendations'::regclass),
                     ('{{schema}}.latest_similar_items'::regclass, '{{schema}}.similar_items'::regclass),
                     ('{{schema}}.champion'::regclass, '{{schema}}.model_registry'::regclass)) AS t (view_oid, table_oid)
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = t.table_oid AND a.attnum > 0 AND NOT a.attisdropped
        JOIN pg_catalog.pg_attribute AS va ON va.attrelid = t.view_oid AND va.attname = a.attname
    LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', col.view_oid, col.attname, col.text);
    END LOOP;
END
$$;
