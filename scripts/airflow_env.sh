# Sourced by scripts/demo.sh: an embedded Airflow (SQLite metadata, LocalExecutor) and an
# embedded SQLite warehouse, all under var/. Override any variable before sourcing.
VAR_DIR="${VAR_DIR:-$REPO_ROOT/var}"
mkdir -p "$VAR_DIR/airflow"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$VAR_DIR/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$REPO_ROOT/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$REPO_ROOT/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export RECSYS_WAREHOUSE_DB="${RECSYS_WAREHOUSE_DB:-$VAR_DIR/warehouse.db}"
export RECSYS_WAREHOUSE_URL="${RECSYS_WAREHOUSE_URL:-sqlite:///$RECSYS_WAREHOUSE_DB}"
export AIRFLOW_CONN_RECSYS_WAREHOUSE="${AIRFLOW_CONN_RECSYS_WAREHOUSE:-{\"conn_type\": \"sqlite\", \"host\": \"$RECSYS_WAREHOUSE_DB\"}}"
export RECSYS_CONFIG="${RECSYS_CONFIG:-$REPO_ROOT/config/demo.yaml}"
# A demo run that fails should say so at once, not retry for ten minutes.
export RECSYS_TASK_RETRIES="${RECSYS_TASK_RETRIES:-0}"
