"""Command line for operators: query the warehouse and inspect the registry.

    python -m recsys_tasks.cli query --url URL --file sql/examples/top5_for_three_users.sql
    python -m recsys_tasks.cli models --url URL
    python -m recsys_tasks.cli models verify --url URL     # check every version's files against its checksum
    python -m recsys_tasks.cli grant-reader --url URL [--role recsys_reader]
    python -m recsys_tasks.cli migrate --url URL                # as the owner role: create/upgrade the output schema
    python -m recsys_tasks.cli grant-pipeline --url URL --role recsys_pipeline [--owner ROLE]
    python -m recsys_tasks.cli cleanup --url URL [--dry-run] [--as-of YYYY-MM-DD]
    python -m recsys_tasks.cli synth --url URL [--users 2000 --items 500 --days 30 --replace]

``--url`` defaults to ``$RECSYS_WAREHOUSE_URL``. On SQLite the output schema is attached exactly as
the pipeline does, so the same SQL runs on both dialects.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.synth import cli as synth_cli
from recsys_tasks.data.warehouse import create_engine
from recsys_tasks.settings import RecsysSettings
from recsys_tasks.sqlfiles import run_statement, split_statements
from recsys_tasks.timeutil import utc

log = logging.getLogger(__name__)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]], *, max_width: int = 60) -> str:
    """A plain-text table (psql style) of ``rows``."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def run_query(engine: sa.Engine, sql: str) -> list[str]:
    """Run each statement of ``sql``; return a formatted table per statement that returns rows."""
    outputs = []
    with engine.connect() as conn:
        for statement in split_statements(sql):
            result = run_statement(conn, statement.rstrip().rstrip(";"))
            if result.returns_rows:
                outputs.append(format_table(list(result.keys()), result.fetchall()))
    return outputs


def _parser() -> argparse.ArgumentParser:
    settings = RecsysSettings()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=settings.warehouse_url, help="SQLAlchemy URL of the warehouse")
    common.add_argument("--config", default=settings.config, help="YAML/JSON config file")
    parser = argparse.ArgumentParser(prog="python -m recsys_tasks.cli", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("query", parents=[common], help="run SQL (a file or a string) and print the result")
    q.add_argument("--file", type=Path)
    q.add_argument("--sql")
    models = sub.add_parser("models", parents=[common], help="list the model registry, or verify every version's files")
    models.add_argument("action", nargs="?", choices=["list", "verify"], default="list")
    tr = sub.add_parser("train", parents=[common], help="train on a run snapshot (what the train task runs; use under torchrun for DDP)")
    tr.add_argument("--snapshot", required=True, help="a run's clean/ snapshot directory (a path or an artifact-store URI)")
    tr.add_argument("--cutoff", required=True, help="ISO timestamp: only events before it are trained on")
    tr.add_argument("--out", required=True, type=Path, help="where the model directory is written")
    tr.add_argument("--init-from", type=Path, help="model directory to warm-start from (the champion)")
    tr.add_argument("--checkpoints", help="artifact-store URI each epoch's checkpoint is copied to and resumed from")
    tr.add_argument(
        "--node-rank", type=int, help="this machine's rank 0..train.nnodes-1 in a multi-node training "
        "(0 hosts the rendezvous at train.rdzv_endpoint; default: torchrun decides by host name)",
    )
    rb = sub.add_parser("rollback", parents=[common], help="make a previous model version champion and republish with it")
    rb.add_argument("--to", required=True, metavar="MODEL_VERSION")
    rb.add_argument("--no-republish", action="store_true", help="only change the champion")
    gr = sub.add_parser("grant-reader", parents=[common], help="create the read-only role of the output schema (PostgreSQL)")
    gr.add_argument("--role", help="role name (default: config publish.reader_role)")
    sub.add_parser("migrate", parents=[common], help="create or upgrade the output schema (run as its owner role)")
    gp = sub.add_parser("grant-pipeline", parents=[common], help="grant a login role what the pipeline needs, and no more (PostgreSQL)")
    gp.add_argument("--role", required=True, help="the role the DAGs connect as")
    gp.add_argument("--owner", help="the output schema's owner role (default: its current owner)")
    gp.add_argument("--publisher", help="group role owning the partitioned tables (default: <owner>_publisher)")
    cl = sub.add_parser("cleanup", parents=[common], help="delete what the retention config says has expired")
    cl.add_argument("--dry-run", action="store_true", help="log what would be deleted, delete nothing")
    cl.add_argument("--as-of", type=date.fromisoformat, help="as-of date the retention ages count from (default: today, UTC)")
    cl.add_argument("--dag-id", default="recsys_retrain", help="DAG whose run directories are cleaned")
    synth_cli.add_arguments(sub.add_parser("synth", parents=[common], help="generate a synthetic shop into the warehouse"))
    return parser


def _models(engine: sa.Engine, cfg: RecsysConfig, *, verify: bool) -> int:
    """Print the registry; with ``verify``, each version's integrity, and exit 1 if any fails."""
    from recsys_tasks.registry import ModelIntegrityError, list_models

    records = list_models(engine, cfg.warehouse.output_schema)
    if not verify:
        metric = cfg.evaluation.primary_metric
        rows = [(r.model_version, r.status, r.parent_version, r.as_of, r.metrics.get(metric), r.decision) for r in records]
        print(format_table(["model_version", "status", "parent", "as_of", metric, "decision"], rows))
        return 0
    from recsys_tasks.storage import ArtifactStore

    store = ArtifactStore.from_config(cfg)
    rows, failed = [], 0
    for r in records:
        try:
            r.verified_dir(store)
            rows.append((r.model_version, r.status, "ok", ""))
        except ModelIntegrityError as exc:
            failed += 1
            rows.append((r.model_version, r.status, "FAILED", str(exc).split(". Nothing was written")[0]))
    print(format_table(["model_version", "status", "integrity", "problem"], rows, max_width=120))
    return 1 if failed else 0


def _admin(args: argparse.Namespace, engine: sa.Engine, cfg: RecsysConfig) -> int:
    """The schema owner's and operator's commands: migrate, grant-pipeline, cleanup."""
    from recsys_tasks.access import AccessError, grant_pipeline_role
    from recsys_tasks.config import ConfigError
    from recsys_tasks.data.migrations import current_revision, head_revision
    from recsys_tasks.data.warehouse import ensure_output_schema

    schema = cfg.warehouse.output_schema
    if args.command == "migrate":
        before = current_revision(engine, schema)
        if ensure_output_schema(engine, schema):
            print(f"schema {schema} upgraded from revision {before or 'none'} to {head_revision()}")
        else:
            print(f"schema {schema} is already at revision {head_revision()}")
    elif args.command == "grant-pipeline":
        try:
            grant = grant_pipeline_role(engine, cfg, role=args.role, owner=args.owner, publisher=args.publisher)
        except (AccessError, ConfigError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"role {grant.role} can run the pipeline on schema {schema} (owner {grant.owner}, publisher group {grant.publisher})")
        if not grant.can_login:
            print(f"note: {grant.role} cannot log in yet: ALTER ROLE {grant.role} LOGIN PASSWORD '...'")
    else:
        from recsys_tasks.stages import cleanup
        from recsys_tasks.stages.context import RunContext
        from recsys_tasks.timeutil import as_date, day_start, now

        as_of = args.as_of or as_date(now())
        ctx = RunContext(args.dag_id, "cli-cleanup", day_start(as_of) - timedelta(days=1), day_start(as_of), args.url, cfg)
        try:
            report = cleanup.run(ctx, dry_run=True if args.dry_run else None)
        finally:
            ctx.dispose()
        print(", ".join(f"{k}: {v}" for k, v in report.items()))
        return 1 if report.get("errors") else 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.url and args.command != "train":
        parser.error("--url is required (or set RECSYS_WAREHOUSE_URL)")
    cfg = RecsysConfig.from_file(args.config) if args.config else RecsysConfig()
    if args.command == "synth":
        return synth_cli.run(args, cfg)
    if args.command == "train":
        from datetime import datetime

        from recsys_tasks.stages.train import train_from_snapshot

        cutoff = datetime.fromisoformat(args.cutoff)
        cutoff = utc(cutoff)
        summary = train_from_snapshot(
            cfg, snapshot=args.snapshot, cutoff=cutoff, out_dir=args.out, init_from=args.init_from,
            node_rank=args.node_rank, checkpoints=args.checkpoints,
        )
        log.info("trained: %s", summary["metrics"])
        return 0
    if args.command == "rollback":
        from recsys_tasks.registry import RegistryError
        from recsys_tasks.stages.rollback import run as rollback

        try:
            result = rollback(args.url, args.to, config=cfg, republish=not args.no_republish)
        except RegistryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"champion is now {result['champion']}; republished: {result['republished']}")
        return 0
    engine = create_engine(args.url, output_schema=cfg.warehouse.output_schema)
    try:
        if args.command == "query":
            if not (args.file or args.sql):
                parser.error("query needs --file or --sql")
            sql = args.file.read_text(encoding="utf-8") if args.file else args.sql
            for table in run_query(engine, sql):
                print(table)
                print()
        elif args.command == "grant-reader":
            from recsys_tasks.access import AccessError, grant_reader_role

            try:
                role = grant_reader_role(engine, cfg, role=args.role)
            except AccessError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"role {role} can read schema {cfg.warehouse.output_schema}; grant it to a login role to use it")
        elif args.command in ("migrate", "grant-pipeline", "cleanup"):
            return _admin(args, engine, cfg)
        elif args.command == "models":
            return _models(engine, cfg, verify=args.action == "verify")
    except sa.exc.SQLAlchemyError as exc:
        print(f"error: {exc.__class__.__name__}: {getattr(exc, 'orig', exc)}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
