"""Mirror runs and model versions to an MLflow tracking server, through its REST API.

Optional: with ``mlflow.tracking_uri`` unset nothing here talks to anything. With it set,

- each Airflow run is one MLflow run (found again by a tag, so a retried task logs into the same
  run): the flattened config as params, the per-epoch training curves (``step`` = epoch), the
  evaluation metrics of challenger, champion and baseline, the decision, and the HTML report;
- each registered model version becomes a version of the MLflow registered model
  ``mlflow.registered_model`` (its files are uploaded as the run's ``model/`` artifacts), tagged
  with our ``model_version``, ``checksum``, ``kind`` and ``as_of``;
- after a promotion or a rollback the ``champion`` alias points at the version of the registry's
  champion, so serving can load ``models:/<registered_model>@champion``.

Our SQL registry stays the source of truth; MLflow only mirrors it. A failed sync (server down, a
timeout, an HTTP error) is logged as a warning and never fails a stage, and every request has the
short ``mlflow.timeout_s`` timeout. No ``mlflow`` package is imported (it cannot be installed with
this project's pins): the calls are MLflow's documented REST API 2.0 over ``requests``, and the
artifacts go through the tracking server's artifact proxy (``mlflow server`` serves artifacts by
default), so workers need no credentials for the server's artifact store. A bearer token
(``MLFLOW_TRACKING_TOKEN``) or basic auth (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``)
is taken from the environment, as MLflow's own client does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import requests
    import sqlalchemy as sa

    from recsys_tasks.config import RecsysConfig
    from recsys_tasks.stages.context import RunContext

log = logging.getLogger(__name__)

#: The alias that follows the registry's champion.
CHAMPION_ALIAS = "champion"
#: MLflow's limits per ``runs/log-batch`` request and per param/tag value (MLflow 2.x/3.x).
_MAX_PARAMS, _MAX_METRICS, _MAX_PARAM_VALUE, _MAX_TAG_VALUE = 100, 1000, 6000, 5000
#: MLflow accepts these characters in metric and param names (``ndcg@10`` becomes ``ndcg_at_10``).
_NOT_IN_NAME = re.compile(r"[^\w./\- :]")


class TrackingError(RuntimeError):
    """The tracking server refused a request or answered something that is not MLflow's API."""


class MlflowRest:
    """The few MLflow REST API 2.0 calls the mirror makes; each request times out after ``timeout_s``."""

    def __init__(self, tracking_uri: str, *, timeout_s: float):
        import requests

        self.base = tracking_uri.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            self.session.auth = (user, password)

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, endpoint: str, *, body: Mapping[str, Any] | None = None,
             query: Mapping[str, Any] | None = None, allow: tuple[str, ...] = ()) -> dict[str, Any]:
        """``METHOD /api/2.0/mlflow/<endpoint>``; an error whose ``error_code`` is in ``allow`` returns ``{}``."""
        response = self.session.request(
            method, f"{self.base}/api/2.0/mlflow/{endpoint}", json=body, params=query, timeout=self.timeout_s
        )
        return self._answer(response, f"{method} {endpoint}", allow)

    def _answer(self, response: requests.Response, what: str, allow: tuple[str, ...] = ()) -> dict[str, Any]:
        try:
            payload = response.json() if response.content else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise TrackingError(
                f"{what}: HTTP {response.status_code} with a body that is not MLflow's JSON; is mlflow.tracking_uri "
                f"({self.base}) an MLflow tracking server?"
            )
        if response.ok:
            return payload
        if payload.get("error_code") in allow:
            return {}
        code, message = payload.get("error_code", ""), payload.get("message", "")
        raise TrackingError(f"{what}: HTTP {response.status_code} {code}: {message}")

    def experiment_id(self, name: str) -> str:
        """The id of the experiment ``name``, created if it does not exist."""
        for _ in range(2):  # another worker may create it between the two calls
            found = self.call(
                "GET", "experiments/get-by-name", query={"experiment_name": name}, allow=("RESOURCE_DOES_NOT_EXIST",)
            )
            if found:
                return str(_field(found, "experiment", "experiment_id"))
            created = self.call("POST", "experiments/create", body={"name": name}, allow=("RESOURCE_ALREADY_EXISTS",))
            if created:
                return str(_field(created, "experiment_id"))
        raise TrackingError(f"experiment {name!r} could neither be found nor created")

    def run_for(self, experiment_id: str, key: str, *, name: str, tags: Mapping[str, str]) -> dict[str, Any]:
        """The run tagged ``recsys.run_key = key`` (its ``info`` and ``data``), created with ``tags`` if missing."""
        found = self.call("POST", "runs/search", body={
            "experiment_ids": [experiment_id], "filter": f"tags.`recsys.run_key` = '{key}'", "max_results": 1,
        })
        if found.get("runs"):
            return found["runs"][0]
        body = {
            "experiment_id": experiment_id, "run_name": name, "start_time": _now_ms(),
            "tags": _pairs({**tags, "recsys.run_key": key}),
        }
        return _field(self.call("POST", "runs/create", body=body), "run")

    def log_batch(self, run_id: str, *, params: Mapping[str, str] | None = None,
                  metrics: Sequence[Mapping[str, Any]] = (), tags: Mapping[str, str] | None = None) -> None:
        """Params, metrics and tags in as many ``runs/log-batch`` requests as MLflow's limits need; tags go last."""
        items = list((params or {}).items())
        for start in range(0, len(items), _MAX_PARAMS):
            chunk = _pairs(dict(items[start:start + _MAX_PARAMS]))
            self.call("POST", "runs/log-batch", body={"run_id": run_id, "params": chunk})
        for start in range(0, len(metrics), _MAX_METRICS):
            chunk = list(metrics[start:start + _MAX_METRICS])
            self.call("POST", "runs/log-batch", body={"run_id": run_id, "metrics": chunk})
        if tags:
            self.call("POST", "runs/log-batch", body={"run_id": run_id, "tags": _pairs(tags)})

    def upload(self, artifact_uri: str, path: str, data: bytes | Path) -> None:
        """Put ``data`` (bytes or a file) at ``path`` under a run's ``artifact_uri``, through the artifact proxy."""
        prefix = re.fullmatch(r"mlflow-artifacts:(?://[^/]*)?/(.+)", artifact_uri)
        if prefix is None:
            raise TrackingError(
                f"the run's artifact location {artifact_uri} is not served by the tracking server; start the server "
                "with artifact serving (the default of `mlflow server`, with --artifacts-destination) so runs can upload"
            )
        url = f"{self.base}/api/2.0/mlflow-artifacts/artifacts/{quote(prefix[1].strip('/'))}/{quote(path)}"
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(data, Path):
            with data.open("rb") as fh:
                response = self.session.put(url, data=fh, headers=headers, timeout=self.timeout_s)
        else:
            response = self.session.put(url, data=data, headers=headers, timeout=self.timeout_s)
        self._answer(response, f"PUT artifact {path}")

    def model_version(self, name: str, model_version: str) -> dict[str, Any] | None:
        """The version of registered model ``name`` tagged ``model_version``, or None."""
        found = self.call("GET", "model-versions/search", query={
            "filter": f"name = '{name}' AND tags.model_version = '{model_version}'", "max_results": 10,
        })
        versions = found.get("model_versions") or []
        return versions[0] if versions else None


def mirror_training(ctx: RunContext, model_version: str, history: Sequence[Mapping[str, Any]]) -> None:
    """Log the run's params and per-epoch curves and make ``model_version`` an MLflow model version."""
    _guarded(ctx.config, f"training of {model_version}", lambda client: _log_training(client, ctx, model_version, history))


def mirror_evaluation(ctx: RunContext, result: Mapping[str, Any]) -> None:
    """Log the evaluation's metrics, decision and report (``result`` is the evaluate stage's) and end the run."""
    _guarded(ctx.config, f"evaluation of run {ctx.run_id}", lambda client: _log_evaluation(client, ctx, result))


def mirror_champion(config: RecsysConfig, engine: sa.Engine) -> None:
    """Point the ``champion`` alias at the MLflow version of the registry's champion."""
    _guarded(config, "champion alias", lambda client: _move_alias(client, config, engine))


def _guarded(config: RecsysConfig, what: str, sync: Callable[[MlflowRest], None]) -> None:
    """Run ``sync`` when the mirror is on; a failure is a warning, never the stage's failure."""
    import requests

    cfg = config.mlflow
    if cfg.tracking_uri is None:
        return
    client = MlflowRest(cfg.tracking_uri, timeout_s=cfg.timeout_s)
    try:
        sync(client)
    except (requests.RequestException, TrackingError, OSError) as exc:
        log.warning("MLflow sync (%s) at %s failed; the run goes on and the SQL registry is unchanged: %s",
                    what, cfg.tracking_uri, exc)
    except Exception:  # an optional mirror must not stop the night's recommendations, even through a bug here
        log.warning("MLflow sync (%s) failed unexpectedly; the run goes on", what, exc_info=True)
    finally:
        client.close()


def _run(client: MlflowRest, ctx: RunContext) -> dict[str, Any]:
    """This Airflow run's MLflow run, found by a key derived from the DAG and run ids."""
    experiment = client.experiment_id(ctx.config.mlflow.experiment)
    key = hashlib.sha256(f"{ctx.dag_id}/{ctx.run_id}".encode()).hexdigest()[:16]
    tags = {"recsys.dag_id": ctx.dag_id, "recsys.run_id": ctx.run_id, "recsys.as_of": ctx.as_of.isoformat()}
    return client.run_for(experiment, key, name=f"{ctx.as_of.isoformat()} {ctx.run_id}", tags=tags)


def _log_training(client: MlflowRest, ctx: RunContext, model_version: str, history: Sequence[Mapping[str, Any]]) -> None:
    from recsys_tasks.config import to_dict
    from recsys_tasks.registry import get_model

    run = _run(client, ctx)
    run_id, artifact_uri = _field(run, "info", "run_id"), _field(run, "info", "artifact_uri")
    logged = {t.get("key"): t.get("value") for t in run.get("data", {}).get("tags", [])}
    # MLflow appends metric points, so a retried task would draw each epoch twice: curves are logged once.
    if logged.get("recsys.training_logged") != model_version:
        client.log_batch(
            run_id, params=dict(flatten(to_dict(ctx.config))), metrics=list(epoch_metrics(history)),
            tags={"recsys.training_logged": model_version, "recsys.model_version": model_version},
        )
    name = ctx.config.mlflow.registered_model
    if client.model_version(name, model_version) is not None:
        log.info("MLflow already has %s as a version of %s", model_version, name)
        return
    record = get_model(ctx.engine, ctx.schema, model_version)
    if record is None:
        raise TrackingError(f"{model_version} is not in the registry, so there is nothing to mirror")
    for file in sorted(p for p in record.verified_dir(ctx.store).iterdir() if p.is_file()):
        client.upload(artifact_uri, f"model/{file.name}", file)
    client.call("POST", "registered-models/create", body={"name": name}, allow=("RESOURCE_ALREADY_EXISTS",))
    tags = {
        "model_version": model_version, "checksum": record.checksum, "kind": record.kind, "as_of": record.as_of.isoformat(),
    }
    if record.parent_version:
        tags["parent_version"] = record.parent_version
    created = client.call("POST", "model-versions/create", body={
        "name": name, "source": f"{artifact_uri.rstrip('/')}/model", "run_id": run_id, "tags": _pairs(tags),
        "description": f"{model_version}: trained by {ctx.dag_id} run {ctx.run_id} on events before "
                       f"{record.data_end:%Y-%m-%d %H:%M} UTC",
    })
    number = _field(created, "model_version", "version")
    log.info("MLflow: %s is version %s of %s (run %s)", model_version, number, name, run_id)


def _log_evaluation(client: MlflowRest, ctx: RunContext, result: Mapping[str, Any]) -> None:
    run = _run(client, ctx)
    run_id, artifact_uri = _field(run, "info", "run_id"), _field(run, "info", "artifact_uri")
    stamp = _now_ms()
    metrics = [
        {"key": metric_name(f"eval.{role}.{name}"), "value": float(value), "timestamp": stamp, "step": 0}
        for role, values in result.get("metrics", {}).items()
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    users = float(result.get("holdout_users", 0))
    metrics.append({"key": "eval.holdout_users", "value": users, "timestamp": stamp, "step": 0})
    decision = result.get("decision", {})
    tags = {
        "recsys.decision": str(decision.get("outcome", "")),
        "recsys.decision_reason": str(decision.get("reason", ""))[:_MAX_TAG_VALUE],
    }
    client.log_batch(run_id, metrics=metrics, tags=tags)
    report = result.get("report")
    if report:
        client.upload(artifact_uri, "report.html", ctx.store.path(report).read_bytes())
    client.call("POST", "runs/update", body={"run_id": run_id, "status": "FINISHED", "end_time": _now_ms()})
    log.info("MLflow: logged the evaluation to run %s", run_id)


def _move_alias(client: MlflowRest, config: RecsysConfig, engine: sa.Engine) -> None:
    from recsys_tasks.registry import get_champion

    champion = get_champion(engine, config.warehouse.output_schema)
    if champion is None:
        return
    name = config.mlflow.registered_model
    version = client.model_version(name, champion.model_version)
    if version is None:
        log.warning("MLflow has no version of %s tagged model_version=%s (trained before the mirror was on?); the %r "
                    "alias stays where it was", name, champion.model_version, CHAMPION_ALIAS)
        return
    number = str(_field(version, "version"))
    client.call("POST", "registered-models/alias", body={"name": name, "alias": CHAMPION_ALIAS, "version": number})
    log.info("MLflow: %s@%s is version %s (%s)", name, CHAMPION_ALIAS, number, champion.model_version)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted key, value)`` params of a nested config dict; lists and empty mappings as JSON."""
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            yield metric_name(prefix + str(key)), text[:_MAX_PARAM_VALUE]


def epoch_metrics(history: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """One metric point per epoch and value: validation metrics as ``val.*``, the rest as ``train.*``."""
    stamp = _now_ms()
    for row in history:
        step = int(row.get("epoch", 0))
        for name, value in row.items():
            if name == "epoch" or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            kind = "val" if "@" in name else "train"
            yield {"key": metric_name(f"{kind}.{name}"), "value": float(value), "timestamp": stamp, "step": step}


def metric_name(name: str) -> str:
    """``name`` with what MLflow refuses in a metric or param name replaced (``ndcg@10`` -> ``ndcg_at_10``)."""
    return _NOT_IN_NAME.sub("_", name.replace("@", "_at_"))


def _field(payload: Mapping[str, Any], *keys: str) -> Any:
    value: Any = payload
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            raise TrackingError(f"the tracking server's answer has no {'.'.join(keys)}: {str(payload)[:200]}")
        value = value[key]
    return value


def _pairs(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["CHAMPION_ALIAS", "MlflowRest", "TrackingError", "epoch_metrics", "flatten", "metric_name",
           "mirror_champion", "mirror_evaluation", "mirror_training"]
