"""The data contract the suites check: suite names, each canonical column's dtype family, value ranges."""

from __future__ import annotations

EVENTS_SUITE = "behaviour_events"
ITEMS_SUITE = "item_catalogue"

#: Canonical dtype family of each column: "string", "utc_datetime" or "number".
EVENT_DTYPES: dict[str, str] = {
    "event_id": "string",
    "user_id": "string",
    "item_id": "string",
    "event_type": "string",
    "event_ts": "utc_datetime",
    "value": "number",
    "query": "string",
    "session_id": "string",
}
ITEM_DTYPES: dict[str, str] = {
    "item_id": "string",
    "title": "string",
    "category": "string",
    "created_at": "utc_datetime",
}

#: Event types whose ``value`` is a price, checked against ``[min_value, max_value]``.
PRICED_EVENT_TYPES: tuple[str, ...] = ("purchase", "add_to_cart")
RATING_RANGE: tuple[float, float] = (1.0, 5.0)

#: Identifier columns: kept byte-exact by cleaning (" u1" and "u1" are different ids), and checked for
#: surrounding whitespace, which is almost always a loading bug that would split one user or item in two.
EVENT_ID_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id", "session_id")
ITEM_ID_COLUMNS: tuple[str, ...] = ("item_id",)
