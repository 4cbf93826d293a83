"""Every DAG loads without import errors and is wired and configured deliberately."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # Airflow's DAG processor and task runner put the DAG folder (the bundle) on sys.path, so the
    # DAG files import their shared modules (recsys_notify, recsys_context) by name; do the same.
    if str(DAGS) not in sys.path:
        sys.path.append(str(DAGS))
    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_retrain_dag_shape(dagbag):
    dag = dagbag.dags.get("recsys_retrain")
    assert dag is not None
    assert set(dag.task_ids) == {
        "extract", "extract_events", "validate", "train", "evaluate", "decide", "promote", "keep_champion", "dry_run_done", "plan_publish",
        "publish_shard", "publish", "publish_similar_items", "cleanup",
    }
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert "recsys" in dag.tags
    assert dag.doc_md and "recsys_retrain" in dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
    # The event shards are a mapped task between the plan (catalogue + shards) and validation.
    assert dag.get_task("extract_events").upstream_task_ids == {"extract"}
    assert dag.get_task("validate").upstream_task_ids == {"extract_events"}
    assert dag.get_task("train").upstream_task_ids == {"validate"}
    assert dag.get_task("evaluate").upstream_task_ids == {"validate", "train"}
    assert dag.get_task("decide").downstream_task_ids == {"promote", "keep_champion", "dry_run_done"}
    assert {"promote", "keep_champion"} <= dag.get_task("plan_publish").upstream_task_ids
    assert dag.get_task("plan_publish").trigger_rule == "none_failed_min_one_success"
    # The shards are a mapped task between the plan and the one swap.
    assert dag.get_task("publish_shard").upstream_task_ids == {"plan_publish"}
    assert dag.get_task("publish").upstream_task_ids == {"publish_shard"}
    assert set(dag.params.keys()) >= {"as_of", "epochs", "history_days", "top_k", "full_retrain", "force_promote", "dry_run"}


def test_dag_files_import_no_heavy_modules():
    """A DAG file is parsed every few seconds: torch, pandas and transformers load inside tasks only."""
    code = (
        "import json, runpy, sys, glob\n"
        "sys.path.append(sys.argv[1])\n"
        "for f in sorted(glob.glob(sys.argv[1] + '/*.py')): runpy.run_path(f)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'pandas', 'transformers', 'great_expectations', 'numpy') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS)], capture_output=True, text=True, check=True, cwd=REPO)
    heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert not {"torch", "pandas", "transformers", "great_expectations"} & set(heavy), heavy
