"""The stages of a run, one module per DAG task; each exposes ``run(ctx, ...)``.

Every stage takes a :class:`~recsys_tasks.stages.context.RunContext` plus the small values earlier
stages returned, and returns a small JSON-ready dict for XCom: paths, counts, versions and metrics,
never frames or tensors. Every stage is safe to rerun for the same interval.
"""

from recsys_tasks.stages import (
    cleanup,
    context,
    evaluate,
    extract,
    promote,
    publish,
    refresh,
    rollback,
    similar_items,
    train,
    validate,
)

__all__ = ["cleanup", "context", "evaluate", "extract", "promote", "publish", "refresh", "rollback", "similar_items", "train", "validate"]
