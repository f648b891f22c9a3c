"""The engine on PostgreSQL when the server goes away under it and comes back: new tasks get
503 store_unavailable with Retry-After while it is down and nothing is answered 202 that was not
committed; the engine reconnects by itself, and every task accepted before purges the edge.
Runs in the test command's PostgreSQL pass (CDR_STORE=postgres), like the store's other files."""
import pytest

from conftest import STORE, assert_clean_exit, fetch, wait_until, warm
from lab import postgres_outage

pytestmark = pytest.mark.skipif(STORE != "postgres", reason="the lab's engines keep tasks in SQLite")

SITE = "http://www.example.com"
FILES = {f"/p/{i}.html": b"page" for i in range(6)}


def test_postgres_going_away_loses_nothing_and_the_engine_reconnects_by_itself(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine()
    agent = lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    for path in FILES:
        warm(edge, SITE + path)
    # The node goes offline, so the tasks accepted before the outage are still owed when it comes.
    assert_clean_exit(agent, agent.stop())
    wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline", what="node offline")
    before = [engine.purge([f"{SITE}/p/{i}.html"]) for i in range(2)]
    assert [status for status, _, _ in before] == [202, 202]

    postgres_outage("pause")
    try:
        status, headers, body = engine.purge([f"{SITE}/p/2.html"])
        assert status == 503 and body["error"]["code"] == "store_unavailable", body
        assert int(headers["retry-after"]) >= 1
        status, _, body = engine.request("GET", f"/v1/tasks/{before[0][2]['task_id']}")
        assert status == 503, body
        assert engine.request("GET", "/healthz")[0] == 200  # the process itself is fine
    finally:
        postgres_outage("resume")

    # Back: the next requests are served, with no restart.
    after = wait_until(lambda: (lambda r: r if r[0] == 202 else None)(
        engine.purge([f"{SITE}/p/3.html"])), timeout=15, what="a purge accepted again")
    tasks = engine.request("GET", "/v1/tasks?limit=100")[2]["tasks"]
    assert len(tasks) == 3, tasks  # the two before and the one after: the 503 left nothing
    assert "store.reconnected" in engine.read_log()

    lab.agent(engine, "edge-1", edge)
    for _, _, task in [*before, after]:
        assert engine.wait_task(task["task_id"])["status"] == "done"
    # What the cache holds: the purged pages are gone from the edge, the others still there.
    assert [fetch(edge, f"{SITE}/p/{i}.html")[1] for i in range(6)] == \
        ["MISS", "MISS", "HIT", "MISS", "HIT", "HIT"]
