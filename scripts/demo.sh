#!/usr/bin/env bash
# The whole product on one machine, no servers: install, generate a synthetic shop into an embedded
# SQLite warehouse, run the recsys_retrain DAG end to end for one logical date with Airflow
# (SQLite metadata), and query the published recommendation table with plain SQL.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
source scripts/airflow_env.sh
LOGICAL_DATE="${LOGICAL_DATE:-2026-02-01}"

echo "==> initialising Airflow metadata in $AIRFLOW_HOME"
airflow db migrate > "$VAR_DIR/airflow-db-migrate.log" 2>&1 || { cat "$VAR_DIR/airflow-db-migrate.log"; exit 1; }

echo "==> generating synthetic behaviour data into $RECSYS_WAREHOUSE_DB"
python -m recsys_tasks.cli synth --url "$RECSYS_WAREHOUSE_URL" --users 800 --items 300 --days 35 \
  --end "$LOGICAL_DATE" --events-per-user-per-day 2 --seed 7 --replace

echo "==> running the recsys_retrain DAG for $LOGICAL_DATE (log: $VAR_DIR/dag-test.log)"
if ! airflow dags test recsys_retrain "$LOGICAL_DATE" > "$VAR_DIR/dag-test.log" 2>&1; then
  grep -av "Skipping registering" "$VAR_DIR/dag-test.log" | tail -60
  echo "The DAG run failed; the full log is $VAR_DIR/dag-test.log" >&2
  exit 1
fi
# One line per step: the library's progress messages, without the log's timestamp and logger columns.
grep -aE "recsys_tasks\.(stages\.[a-z_]+|modeling\.training|data\.publication)\]|DagRun Finished" "$VAR_DIR/dag-test.log" \
  | sed -E 's/^[^ ]+ \[[a-z ]+\] (.*) \[(recsys_tasks|airflow)[^]]*\].*$/\1/' | cut -c1-160 || true
if ! grep -aq "state=success" "$VAR_DIR/dag-test.log"; then
  echo "The DAG run did not succeed; see $VAR_DIR/dag-test.log" >&2
  exit 1
fi

echo "==> SQL: sql/examples/top5_for_three_users.sql"
python -m recsys_tasks.cli query --url "$RECSYS_WAREHOUSE_URL" --file sql/examples/top5_for_three_users.sql
