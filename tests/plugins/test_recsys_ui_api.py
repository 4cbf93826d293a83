"""Every endpoint of the Recommendations UI app against PostgreSQL and SQLite, bad input included."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi import HTTPException, Request
from fastapi.testclient import TestClient
from recsys_ui.app import create_app
from ui_seed import AS_OF, ITEMS, TOP_K, U1_EVENTS, Filled

from recsys_tasks import insights

INJECTIONS = ["' OR 1=1 --", "u1; DROP TABLE x", "u1' UNION SELECT * FROM model_registry --", "../../etc/passwd", "x" * 129, "ü1"]


async def _anyone(_request: Request) -> str:
    return "tester"


@pytest.fixture
def client(filled: Filled) -> TestClient:
    app = create_app(engine=lambda: filled.engine, config=lambda: filled.cfg, authenticate=_anyone)
    return TestClient(app, raise_server_exceptions=False)


def test_page_is_self_contained_html(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "User lookup" in response.text
    assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")  # no external assets
    assert "https://" not in response.text


def test_user_recommendations_have_titles_scores_and_reasons(client: TestClient) -> None:
    body = client.get("/api/users/u1/recommendations").json()
    assert body["publication"]["as_of"] == AS_OF.isoformat()
    assert body["publication"]["model_version"] == "m2"
    got = [(r["rank"], r["item_id"], r["title"], r["category"], round(r["score"], 2), r["reason"]) for r in body["items"]]
    want = [
        (rank, item, ITEMS[item][0], ITEMS[item][1], score, reason)
        for rank, (item, score, reason) in enumerate(TOP_K["u1"], start=1)
    ]
    assert got == want


def test_score_kinds_say_how_to_read_each_score(client: TestClient) -> None:
    u1 = client.get("/api/users/u1/recommendations").json()["items"]
    assert {r["score_kind"] for r in u1} == {"model"}
    u3 = client.get("/api/users/u3/recommendations").json()["items"]
    assert [(r["item_id"], r["score"], r["score_kind"]) for r in u3] == [("i3", 199.0, "trending"), ("i4", pytest.approx(0.7), "new_item")]
    similar = client.get("/api/items/i1/similar").json()["similar"]
    assert {s["score_kind"] for s in similar} == {"similarity"}


def test_user_events_before_the_publication_cutoff(client: TestClient) -> None:
    body = client.get("/api/users/u1/events").json()
    assert (body["as_of"], body["since"], body["message"]) == ("2026-01-05", "2025-12-06", None)
    # Newest first; the purchase after the cutoff and the view from November are not shown.
    got = [(e["event_ts"][:16], e["event_type"], e["item_id"], e["title"], e["query"]) for e in body["events"]]
    want = [(ts[:16], kind, item, ITEMS[item][0] if item else None, query) for ts, kind, item, query in reversed(U1_EVENTS[1:4])]
    assert [(t.replace("T", " "), *rest) for t, *rest in got] == [(t.replace("T", " "), *rest) for t, *rest in want]
    assert body["events"][0]["value"] == 9.5
    older = client.get("/api/users/u1/events", params={"as_of": "2026-01-04"}).json()
    assert [e["event_type"] for e in older["events"]] == ["view", "search"]
    nobody = client.get("/api/users/nobody/events").json()
    assert nobody["events"] == [] and "no events of 'nobody'" in nobody["message"]
    assert client.get("/api/users/u1' OR 1=1 --/events").status_code == 400
    assert client.get("/api/users/u1/events", params={"as_of": "2020-01-01"}).status_code == 404


def test_user_events_without_a_readable_events_table_say_so(client: TestClient, filled: Filled) -> None:
    wh = filled.cfg.warehouse
    with filled.writer.begin() as conn:
        name = f'"{wh.source_schema}".{wh.events_table}' if wh.source_schema else wh.events_table
        conn.exec_driver_sql(f"DROP TABLE {name}")
    filled.engine.dispose()
    body = client.get("/api/users/u1/events").json()
    assert body["events"] == [] and "not readable through the output connection" in body["message"]
    assert client.get("/api/users/u1/recommendations").status_code == 200


def test_publications_newest_first(client: TestClient) -> None:
    body = client.get("/api/publications").json()
    assert [(p["as_of"], p["model_version"], p["users"]) for p in body["publications"]] == [("2026-01-05", "m2", 3), ("2026-01-04", "m1", 1)]
    assert client.get("/api/publications", params={"limit": 0}).status_code == 400


def test_user_ids_with_allowed_punctuation_and_unknown_items(client: TestClient) -> None:
    body = client.get("/api/users/user.two@example/recommendations").json()
    assert [(r["item_id"], r["title"]) for r in body["items"]] == [("i1", "Blue Kettle"), ("i9", None)]


def test_an_older_publication_by_as_of(client: TestClient) -> None:
    body = client.get("/api/users/u1/recommendations", params={"as_of": "2026-01-04"}).json()
    assert [(r["item_id"], r["model_version"]) for r in body["items"]] == [("i1", "m1")]


def test_unknown_user_is_404_with_a_message(client: TestClient) -> None:
    response = client.get("/api/users/nobody/recommendations")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "'nobody'" in response.json()["detail"] and AS_OF.isoformat() in response.json()["detail"]


def test_missing_publication_date_is_404(client: TestClient) -> None:
    response = client.get("/api/users/u1/recommendations", params={"as_of": "2020-01-01"})
    assert response.status_code == 404
    assert "2020-01-01" in response.json()["detail"]


@pytest.mark.parametrize("bad", INJECTIONS)
def test_malformed_and_injected_ids_are_400(client: TestClient, filled: Filled, bad: str) -> None:
    for path in (f"/api/users/{bad}/recommendations", f"/api/items/{bad}/similar"):
        response = client.get(path)
        # A slash in the id makes the route not match (404); everything else is rejected by the pattern.
        assert response.status_code in ((404,) if "/" in bad else (400,)), (path, response.text)
        if response.status_code == 400:
            assert response.json()["error"] == "invalid_input"
            assert "letters, digits" in response.json()["detail"]
    with filled.writer.connect() as conn:  # nothing was dropped
        assert sa.inspect(conn).has_table("model_registry", schema=filled.cfg.warehouse.output_schema)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/users/u1/recommendations", {"as_of": "2026-13-01"}),
        ("/api/users/u1/recommendations", {"as_of": "'; DROP TABLE x"}),
        ("/api/registry", {"limit": 0}),
        ("/api/registry", {"limit": "abc"}),
        ("/api/metrics", {"metric": "ndcg@10' --"}),
        ("/api/items/i1/similar", {"limit": 10_000}),
        ("/api/validation", {"runs": -1}),
    ],
)
def test_bad_parameters_are_4xx_never_500(client: TestClient, path: str, params: dict) -> None:
    response = client.get(path, params=params)
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()


def test_registry_deltas_are_against_the_judging_model_on_the_same_holdout(client: TestClient) -> None:
    body = client.get("/api/registry").json()
    assert body["metric"] == "ndcg@10"
    by_version = {v["model_version"]: v for v in body["versions"]}
    assert [v["model_version"] for v in body["versions"]] == ["m3", "m2", "m1", "m0"]
    # m3 was judged on r3 against m2, which scored 0.26 there: -0.02, not the -0.01 that m2's own
    # night (0.25) would suggest. The bootstrap interval of r3 comes with it.
    m3 = by_version["m3"]
    assert (m3["status"], m3["parent_version"], m3["judged_against"], m3["judged_run_id"]) == ("rejected", "m2", "m2", "r3")
    assert m3["primary_metric"] == pytest.approx(0.24) and m3["reference_primary_metric"] == pytest.approx(0.26)
    assert m3["delta"] == pytest.approx(-0.02) and m3["relative_delta"] == pytest.approx(-0.02 / 0.26, abs=1e-5)
    assert m3["delta_low"] == pytest.approx(-0.02 / 0.26, abs=1e-5) == m3["delta_high"]
    assert (m3["confidence"], m3["holdout_n"]) == (0.95, 50)
    assert m3["decision"] == "ndcg@10 -4% vs champion m2"
    # m2 was judged on r2 against champion m1 (no interval stored: the delta still comes from r2).
    m2 = by_version["m2"]
    assert (m2["status"], m2["judged_against"], m2["judged_against_role"]) == ("champion", "m1", "champion")
    assert m2["delta"] == pytest.approx(0.05) and m2["relative_delta"] == pytest.approx(0.25)
    assert m2["delta_low"] is None and m2["delta_high"] is None
    # The first model was judged against most-popular on r1.
    m1 = by_version["m1"]
    assert (m1["status"], m1["judged_against"], m1["judged_against_role"]) == ("retired", "most_popular", "baseline")
    assert m1["delta"] == pytest.approx(0.10) and m1["relative_delta"] == pytest.approx(1.0)
    assert "replaced by m2" in m1["decision"]


def test_registry_is_sorted_by_as_of_and_names_the_airflow_run(client: TestClient) -> None:
    versions = client.get("/api/registry").json()["versions"]
    # m0 was registered last, by a backfill for an older date: it sorts by its as-of, not its creation.
    assert [(v["as_of"], v["model_version"]) for v in versions] == [
        ("2026-01-05", "m3"), ("2026-01-05", "m2"), ("2026-01-04", "m1"), ("2026-01-03", "m0")
    ]
    assert [(v["dag_id"], v["run_id"]) for v in versions] == [
        ("recsys_retrain", "r3"), ("recsys_retrain", "r2"), ("recsys_retrain", "r1"), ("recsys_retrain", "backfill__2026-01-03")
    ]
    assert versions[-1]["delta"] is None and versions[-1]["primary_metric"] == pytest.approx(0.15)  # never evaluated


def test_registry_delta_when_the_judging_model_is_outside_the_window(client: TestClient) -> None:
    newest = client.get("/api/registry", params={"limit": 1}).json()["versions"]
    assert [v["model_version"] for v in newest] == ["m3"]
    assert newest[0]["reference_primary_metric"] == pytest.approx(0.26) and newest[0]["delta"] == pytest.approx(-0.02)


def test_metric_history_per_role(client: TestClient) -> None:
    body = client.get("/api/metrics").json()
    assert body["metric"] == "ndcg@10"
    series = {role: [(p["as_of"], p["model_version"], round(p["value"], 2)) for p in pts] for role, pts in body["series"].items()}
    assert series == {
        "challenger": [("2026-01-04", "m1", 0.2), ("2026-01-05", "m2", 0.25), ("2026-01-05", "m3", 0.24)],
        "champion": [("2026-01-05", "m1", 0.2), ("2026-01-05", "m2", 0.26)],
        "baseline": [("2026-01-04", "most_popular", 0.1), ("2026-01-05", "most_popular", 0.11), ("2026-01-05", "most_popular", 0.12)],
    }
    assert client.get("/api/metrics", params={"metric": "hr@10"}).json()["points"] == []


def test_metric_history_says_who_was_promoted_how_many_users_and_what_else_there_is(client: TestClient) -> None:
    body = client.get("/api/metrics").json()
    assert (body["segment"], body["metrics"], body["segments"]) == ("all", ["ndcg@10"], ["all", "new_users"])
    # m1 (the first model) and m2 were promoted by the run that evaluated them; m3 was not.
    assert [(p["model_version"], p["promoted"]) for p in body["series"]["challenger"]] == [("m1", True), ("m2", True), ("m3", False)]
    assert not any(p["promoted"] for p in body["series"]["champion"] + body["series"]["baseline"])
    assert {p["users"] for p in body["points"]} == {50}
    segment = client.get("/api/metrics", params={"segment": "new_users"}).json()
    assert segment["segment"] == "new_users" and len(segment["points"]) == 8
    assert {(p["value"], p["users"]) for p in segment["points"]} == {(0.01, 3)}
    assert client.get("/api/metrics", params={"segment": "nobody"}).json()["points"] == []
    bad = client.get("/api/metrics", params={"segment": "all' --"})
    assert bad.status_code == 400 and "segment" in bad.json()["detail"]


def test_validation_results_link_to_data_docs(client: TestClient) -> None:
    body = client.get("/api/validation").json()
    assert body["run_id"] == "r2"
    run = body["runs"][0]
    assert run["success"] is True and run["interval_events"] == 12
    assert run["docs_url"].endswith("/datadocs/recsys_retrain/2026-01-05/r2/data_docs/index.html")
    assert [(r["success"], r["severity"]) for r in body["results"]] == [(False, "warning"), (True, "blocking"), (True, "blocking")]
    # The dtype check is the pipeline's own, so the events page of the Data Docs counts 2, not 3.
    assert {r["expectation"]: r["in_data_docs"] for r in body["results"]} == {
        "expect_table_row_count_to_be_between": True, "expect_column_values_to_not_be_null": True,
        "expect_column_dtype_to_be_canonical": False,
    }
    assert body["suites"] == [{"suite": "events", "checks": 3, "failed": 1, "in_data_docs": 2}]
    docs = client.get(run["docs_url"])
    assert docs.status_code == 200 and "Data Docs of r2" in docs.text
    # The CDN assets come from this app, without the CDN's integrity hashes; unknown external tags are dropped.
    assert "https://" not in docs.text and "integrity" not in docs.text and "font-awesome" not in docs.text
    jquery = docs.text.split('<script src="')[1].split('"')[0]
    assert jquery.endswith("/datadocs-assets/jquery.min.js")
    asset = client.get(jquery)
    assert asset.status_code == 200 and "jQuery v3.7.1" in asset.text[:200]
    assert client.get("/datadocs-assets/..%2Fapp.py").status_code == 404
    assert client.get("/datadocs-assets/app.py").status_code == 404
    assert client.get("/api/validation", params={"run_id": "no-such-run"}).status_code == 404


def test_validation_of_an_older_run(client: TestClient) -> None:
    body = client.get("/api/validation", params={"run_id": "r1"}).json()
    assert [r["run_id"] for r in body["runs"]] == ["r2", "r1"] and body["run_id"] == "r1"
    assert body["runs"][1]["docs_url"] is None
    assert [(r["expectation"], r["observed_value"]) for r in body["results"]] == [
        ("expect_column_values_to_not_be_null", '{"unexpected_count": 0, "element_count": 7, "examples": []}')
    ]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/datadocs/../../../../etc/passwd", {400, 404}),
        ("/datadocs/%2e%2e/%2e%2e/etc/passwd", {400}),
        ("/datadocs/..%2F..%2Fsecret", {400}),
        ("/datadocs/models/secret.txt", {400}),
        ("/datadocs//etc/passwd", {400}),
        ("/datadocs/recsys_retrain/2026-01-05/r2/data_docs/missing.html", {404}),
    ],
)
def test_data_docs_cannot_leave_the_docs_directories(client: TestClient, path: str, status: set) -> None:
    response = client.get(path)
    assert response.status_code in status, response.text
    assert "root:" not in response.text and "not for the browser" not in response.text


def test_data_docs_refuse_a_symlink_out_of_the_root(client: TestClient, filled: Filled, tmp_path) -> None:
    outside = tmp_path / "outside.html"
    outside.write_text("outside", encoding="utf-8")
    (filled.docs_index.parent / "link.html").symlink_to(outside)
    response = client.get("/datadocs/recsys_retrain/2026-01-05/r2/data_docs/link.html")
    assert response.status_code == 400


def test_similar_items_with_titles(client: TestClient) -> None:
    body = client.get("/api/items/i1/similar").json()
    assert body["item"] == {"item_id": "i1", "title": "Blue Kettle", "category": "kitchen"}
    assert body["in_publication"] == {"as_of": AS_OF.isoformat(), "users": 1, "best_rank": 1}
    assert [(s["rank"], s["item_id"], s["title"]) for s in body["similar"]] == [(1, "i2", "Red Teapot"), (2, "i3", "Garden Hose")]
    assert body["similar_as_of"] == AS_OF.isoformat() and body["message"] is None


def test_item_without_neighbours_says_so(client: TestClient) -> None:
    body = client.get("/api/items/i4/similar").json()
    assert body["similar"] == [] and "no similar items" in body["message"]


def test_unknown_item_is_404(client: TestClient) -> None:
    response = client.get("/api/items/nope/similar")
    assert response.status_code == 404 and "'nope'" in response.json()["detail"]


def test_similar_items_table_missing_gives_a_message(client: TestClient, filled: Filled) -> None:
    schema = filled.cfg.warehouse.output_schema
    with filled.writer.begin() as conn:
        conn.exec_driver_sql(f'DROP VIEW IF EXISTS "{schema}".latest_similar_items')
        conn.exec_driver_sql(f'DROP TABLE "{schema}".similar_items')
    filled.engine.dispose()
    response = client.get("/api/items/i1/similar")
    assert response.status_code == 200
    body = response.json()
    assert body["similar"] == [] and "similar_items does not exist yet" in body["message"]
    assert body["item"]["title"] == "Blue Kettle"


def test_publication_endpoint(client: TestClient) -> None:
    body = client.get("/api/publication").json()
    assert (body["as_of"], body["model_version"], body["users"], body["rows"]) == ("2026-01-05", "m2", 3, 7)


def test_reader_engine_cannot_write(filled: Filled) -> None:
    schema = filled.cfg.warehouse.output_schema
    with pytest.raises(sa.exc.DBAPIError), filled.engine.begin() as conn:
        conn.exec_driver_sql(f'DELETE FROM "{schema}".model_registry')


def test_empty_output_schema_is_503_with_what_to_do(sqlite_url: str, tmp_path) -> None:
    from recsys_tasks.config import RecsysConfig

    cfg = RecsysConfig.from_mapping({"artifact_root": str(tmp_path)})
    engine = insights.create_reader_engine(sqlite_url, output_schema="recsys")
    client = TestClient(create_app(engine=lambda: engine, config=lambda: cfg, authenticate=None), raise_server_exceptions=False)
    response = client.get("/api/registry")
    assert response.status_code == 503
    assert "recsys_retrain" in response.json()["detail"]


# ------------------------------------------------------------------------------------------ authentication


def test_airflow_authentication_is_enforced(filled: Filled) -> None:
    """The plugin's real dependency: no token -> 401, a forged token -> 403, the page -> login redirect."""
    import recsys_ui_plugin

    app = create_app(
        engine=lambda: filled.engine,
        config=lambda: filled.cfg,
        authenticate=recsys_ui_plugin.airflow_user,
        login_url=lambda next_url: f"/auth/login?next={next_url}",
    )
    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/api/users/u1/recommendations", "/api/registry", "/api/metrics", "/api/validation",
                 "/api/items/i1/similar", "/api/publication", "/datadocs/recsys_retrain/2026-01-05/r2/data_docs/index.html"):
        response = client.get(path)
        assert response.status_code == 401, (path, response.text)
        assert "u1" not in response.text and "Kettle" not in response.text
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 307 and page.headers["location"].startswith("/auth/login?next=")


def test_a_rejected_user_gets_no_data(filled: Filled) -> None:
    async def deny(_request: Request) -> None:
        raise HTTPException(403, "user may not read the recsys_retrain DAG and its outputs")

    client = TestClient(create_app(engine=lambda: filled.engine, config=lambda: filled.cfg, authenticate=deny))
    response = client.get("/api/users/u1/recommendations")
    assert response.status_code == 403 and "Kettle" not in response.text
