"""``python -m recsys_tasks.cli synth``: generate a synthetic shop and bulk load it into a warehouse.

``recsys_tasks.cli`` owns the parser and the shared ``--url``/``--config`` options; this module adds
the generator's options and runs the subcommand.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from recsys_tasks.config import ConfigError, RecsysConfig, check_identifier
from recsys_tasks.data import sources
from recsys_tasks.data.synth import generate
from recsys_tasks.timeutil import utc

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``synth`` subcommand's options."""
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=30, help="length of the window that ends at --end")
    parser.add_argument(
        "--end", type=_instant, default="2026-01-31", help="exclusive end of the window (UTC date or time)"
    )
    parser.add_argument("--events-per-user-per-day", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replace", action="store_true", help="empty the source tables before loading")
    parser.add_argument(
        "--schema", type=_identifier, help="source schema (overrides the config's warehouse.source_schema)"
    )


def run(args: argparse.Namespace, cfg: RecsysConfig) -> int:
    """Generate the shop ``args`` describe and load it into the source tables ``cfg.warehouse`` names."""
    if args.schema:
        cfg = cfg.with_overrides({"warehouse.source_schema": args.schema})
    end = args.end
    start = end - timedelta(days=args.days)
    began = time.perf_counter()
    events, items = generate(
        n_users=args.users,
        n_items=args.items,
        start=start,
        end=end,
        events_per_user_per_day=args.events_per_user_per_day,
        seed=args.seed,
    )
    generated = time.perf_counter()
    logger.info("generated %d events and %d items for [%s, %s) in %.1f s",
                len(events), len(items), start.isoformat(), end.isoformat(), generated - began)
    engine = sa.create_engine(args.url)
    try:
        sources.load(engine, events, items, warehouse=cfg.warehouse, create=True, replace=args.replace)
    finally:
        engine.dispose()
    logger.info("done in %.1f s (generate %.1f s, load %.1f s) -> %s",
                time.perf_counter() - began, generated - began, time.perf_counter() - generated,
                sa.engine.make_url(args.url).render_as_string(hide_password=True))
    return 0


def _instant(value: str) -> datetime:
    try:
        return utc(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _identifier(value: str) -> str:
    try:
        return check_identifier(value, key="--schema")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
