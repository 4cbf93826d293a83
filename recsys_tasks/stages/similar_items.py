"""Similar items: the champion's nearest items of every catalogue item, for the run's as-of date."""

from __future__ import annotations

import logging
from typing import Any

from recsys_tasks.stages.context import NothingToPublish, RunContext, names_storage_failures

log = logging.getLogger(__name__)


@names_storage_failures("similar_items")
def run(ctx: RunContext, snapshot: str) -> dict[str, Any]:
    """Publish the champion's top-N similar items of every catalogue item, as of ``ctx.as_of``."""
    import numpy as np

    from recsys_tasks.data.publication import write_similar_items
    from recsys_tasks.data.publish_safety import PublishPolicy
    from recsys_tasks.data.snapshot import read_frame
    from recsys_tasks.data.warehouse import ensure_output_schema
    from recsys_tasks.registry import champion_at
    from recsys_tasks.serving.recommender import load_recommender
    from recsys_tasks.serving.similar import similar_item_rows

    ensure_output_schema(ctx.engine, ctx.schema)
    champion = champion_at(ctx.engine, ctx.schema, ctx.as_of)  # point in time: the champion of this date
    if champion is None:
        raise NothingToPublish("there is no champion model yet, so there are no item vectors to publish similar items from")
    items = read_frame(ctx.store.path(snapshot) / "items.parquet")  # the catalogue only, not the window's events
    recommender = load_recommender(champion.verified_dir(ctx.store), device="cpu")
    vectors = recommender.item_vectors()
    if vectors.ndim != 2 or vectors.shape[1] < 2:
        raise NothingToPublish(f"champion {champion.model_version} is a {recommender.kind} model without item vectors; no similar items")
    # Only items still in the catalogue are listed or suggested.
    eligible = np.zeros(len(recommender.vocab), dtype=bool)
    eligible[recommender.vocab.encode(items["item_id"].astype(str).to_numpy())] = True
    eligible[0] = False
    n = min(ctx.config.publish.similar_items_n, max(int(eligible.sum()) - 1, 1))
    rows = similar_item_rows(vectors, recommender.vocab, n=n, as_of=ctx.as_of, model_version=champion.model_version, eligible=eligible)
    count, listed = write_similar_items(ctx.engine, ctx.schema, rows, as_of=ctx.as_of, policy=PublishPolicy.from_config(ctx.config.publish))
    return {"as_of": ctx.as_of.isoformat(), "model_version": champion.model_version, "items": listed, "rows": count, "n": n}
