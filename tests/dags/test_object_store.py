"""The real DAG with its artifacts on object storage: a local S3-compatible server (moto) on 127.0.0.1.

Every file one task hands another (snapshots, Data Docs, the report, model versions, the publish
shards) must be in the store, addressed by URI; the worker's disk holds only its cache.
"""

from __future__ import annotations

import s3fs
import sqlalchemy as sa
import yaml
from test_retrain_e2e import (
    AIRFLOW,
    LOGICAL_DATE,
    _airflow_env,
    _check_publication,
    _config,
    _dag_test,
    _run,
    _shop,
)

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data.warehouse import create_engine


def test_retrain_dag_keeps_every_artifact_in_the_object_store(tmp_path, s3_root):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = create_engine(url, output_schema="recsys")
    _shop(engine, WarehouseConfig())
    config_path = _config(tmp_path, source_schema=None, output_schema="recsys")
    cfg = yaml.safe_load(config_path.read_text())
    cfg.update(s3_root, local_cache_dir=str(tmp_path / "worker-cache"))
    cfg["publish"]["shards"] = 3  # the mapped publish_shard tasks read their shard files from the store
    config_path.write_text(yaml.safe_dump(cfg))
    home = tmp_path / "airflow"
    home.mkdir()
    env = _airflow_env(home, warehouse_url=url, config_path=config_path)
    assert _run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log").returncode == 0
    _dag_test(env, tmp_path, 1)
    _check_publication(engine, "recsys")

    with engine.connect() as conn:
        uris = [u for (u,) in conn.execute(sa.text('SELECT artifact_uri FROM "recsys".model_registry'))]
        docs = conn.execute(sa.text('SELECT docs_uri FROM "recsys".validation_runs')).scalar()
    root = cfg["artifact_root"]
    assert uris and all(u.startswith(f"{root}/models/") for u in uris), uris
    assert docs.startswith(f"{root}/recsys_retrain/{LOGICAL_DATE}/") and docs.endswith("/data_docs/index.html"), docs
    fs = s3fs.S3FileSystem(endpoint_url=s3_root["artifact_storage_options"]["endpoint_url"], skip_instance_cache=True)
    stored = {name.split(f"/{LOGICAL_DATE}/", 1)[-1].split("/", 1)[-1] for name in fs.find(root.removeprefix("s3://"))}
    for expected in (
        "snapshot/events.parquet", "clean/items.parquet", "data_docs/index.html", "report.html", "train_history.json",
        "publish/events-00002-of-00003.parquet", "publish/item_activity.parquet",
    ):
        assert expected in stored, f"{expected} is not in the store: {sorted(stored)[:20]}"
    assert any(name.endswith("/model.safetensors") for name in fs.find(uris[0].removeprefix("s3://")))
    assert not (tmp_path / "artifacts").exists(), "nothing may be written to a local artifact root"
    engine.dispose()
