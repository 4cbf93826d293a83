"""Rollback (an operator's action): make an earlier model champion again and republish with it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from recsys_tasks.config import RecsysConfig
from recsys_tasks.stages import publish as publish_stage
from recsys_tasks.stages.context import RunContext
from recsys_tasks.timeutil import as_date, day_start
from recsys_tasks.tracking import mirror_champion

log = logging.getLogger(__name__)


def run(
    warehouse_url: str,
    model_version: str,
    *,
    config: RecsysConfig | None = None,
    dag_id: str = "recsys_retrain",
    republish: bool = True,
) -> dict[str, Any]:
    """Make ``model_version`` the champion again and republish the newest publication with it.

    The model's files are checked against the registry's checksum first. The newest publication's
    as-of date is republished from that run's cleaned snapshot, so ``latest_recommendations``
    shows the restored model's recommendations when this returns.
    """
    from recsys_tasks.data.warehouse import create_engine
    from recsys_tasks.registry import RegistryError, get_model
    from recsys_tasks.registry import promote as promote_version
    from recsys_tasks.sqlfiles import statement
    from recsys_tasks.storage import ArtifactStore

    cfg = config or RecsysConfig.from_env()
    schema = cfg.warehouse.output_schema
    engine = create_engine(warehouse_url, output_schema=schema)
    try:
        record = get_model(engine, schema, model_version)
        if record is None:
            raise RegistryError(
                f"model version {model_version!r} is not in {schema}.model_registry; list them with `python -m recsys_tasks.cli models`"
            )
        record.verified_dir(ArtifactStore.from_config(cfg))  # a version whose files changed cannot be restored
        promote_version(engine, schema, model_version, decision=f"rollback to {model_version} by an operator")
        mirror_champion(cfg, engine)  # MLflow's champion alias follows the registry; never fails the rollback
        with engine.connect() as conn:
            latest = conn.execute(statement("select_latest_publication", schema=schema)).first()
    finally:
        engine.dispose()
    out: dict[str, Any] = {"champion": model_version, "republished": None}
    if not republish:
        return out
    if latest is None:
        log.info("no publication yet: nothing to republish")
        return out
    as_of = as_date(latest.as_of)
    end = day_start(as_of)
    source = RunContext(dag_id, str(latest.run_id), end - timedelta(days=1), end, warehouse_url, cfg)
    snapshot = source.run_dir / "clean"
    if not (snapshot / "events.parquet").exists():
        raise RegistryError(
            f"{model_version} is champion again, but the snapshot of the publication of {as_of} ({snapshot}) is gone, "
            "so its recommendations were not republished; rerun recsys_retrain for that date"
        )
    # The publication keeps the run id of the run whose data it was built from, so a later
    # rollback finds the same snapshot again; the registry records who changed the model.
    try:
        out["republished"] = publish_stage.run(source, str(snapshot), top_k=int(latest.top_k))
    finally:
        source.dispose()
    return out
