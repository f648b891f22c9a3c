"""Retries, deadlines and offline nodes against real nginx behind a fault-injecting proxy."""
import os
import sys

from conftest import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from lab import FaultProxy  # noqa: E402

SITE = "http://www.example.com"
FILES = {f"/f/{i}.css": b"x" for i in range(50)}


def failures(engine, task_id):
    items = engine.request("GET", f"/v1/tasks/{task_id}/items?state=failed&limit=1000")[2]["items"]
    return [node for item in items for node in item["nodes"] if node["state"] == "failed"]


def test_retries_get_through_a_flaky_cache(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    proxy = lab.add(FaultProxy(edge, fail_ratio=0.3, drop_ratio=0.1).start())
    engine = lab.engine("--max-attempts", "20", "--retry-base-ms", "20", "--retry-max-ms", "200")
    agent = lab.agent(engine, "edge-1", None, extra_args=("--cache-url", proxy.url))
    engine.wait_online("edge-1")
    _, _, body = engine.request("POST", "/v1/preload", {"urls": [SITE + p for p in FILES]})
    task = engine.wait_task(body["task_id"], timeout=60)
    assert task["status"] == "done", (task, failures(engine, body["task_id"]))
    assert task["counters"]["succeeded"] == len(FILES)
    assert proxy.counts["failed"] > 0 and proxy.counts["dropped"] > 0  # retries really happened
    assert proxy.counts["forwarded"] >= len(FILES)
    assert agent.running()


def test_client_errors_are_not_retried(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    proxy = lab.add(FaultProxy(edge, fail_ratio=1.0, fail_status=403, port=edge.purge_port).start())
    engine = lab.engine("--max-attempts", "5", "--retry-base-ms", "20")
    lab.agent(engine, "edge-1", None, extra_args=("--nginx-purge-url", proxy.url))
    engine.wait_online("edge-1")
    _, _, body = engine.purge([SITE + "/f/1.css", SITE + "/f/2.css"])
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "failed"
    assert [n["reason"] for n in failures(engine, body["task_id"])] == ["http_403", "http_403"]
    assert proxy.counts["failed"] == 2  # one attempt each


def test_retries_stop_at_the_attempt_limit(lab):
    engine = lab.engine("--max-attempts", "3", "--retry-base-ms", "10")
    lab.agent(engine, "edge-down", None)  # nothing listens on its cache URL
    engine.wait_online("edge-down")
    _, _, body = engine.purge([SITE + "/f/1.css"])
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "failed"
    assert [n["reason"] for n in failures(engine, body["task_id"])] == ["connection_refused"]


def test_deadline_fails_what_is_left(lab):
    engine = lab.engine("--max-attempts", "100", "--retry-base-ms", "100", "--retry-max-ms", "100")
    lab.agent(engine, "edge-down", None)
    engine.wait_online("edge-down")
    _, _, body = engine.purge([SITE + "/f/1.css"], deadline_s=1)
    task = engine.wait_task(body["task_id"], timeout=10)
    assert task["status"] == "failed"
    assert [n["reason"] for n in failures(engine, body["task_id"])] == ["deadline_exceeded"]


def one_node_up_one_gone(lab):
    """An engine with node edge-up (online, real nginx) and edge-gone (registered, offline)."""
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine()
    lab.agent(engine, "edge-up", edge)
    gone = lab.agent(engine, "edge-gone", edge)
    engine.wait_online("edge-up", "edge-gone")
    gone.stop()
    wait_until(lambda: engine.nodes()["edge-gone"]["state"] == "offline")
    return engine


def test_node_offline_for_the_whole_deadline(lab):
    engine = one_node_up_one_gone(lab)
    _, _, body = engine.purge([SITE + "/f/1.css", SITE + "/f/2.css"], deadline_s=1)
    task = engine.wait_task(body["task_id"], timeout=10)
    assert task["status"] == "partial"
    assert task["counters"] == {"total": 4, "succeeded": 2, "failed": 2, "pending": 0, "unsupported": 0,
                                "verified": 2}
    assert {(n["node"], n["reason"]) for n in failures(engine, body["task_id"])} == {("edge-gone", "node_offline")}
    assert engine.nodes()["edge-gone"]["queue_depth"] == 0  # nothing left waiting for it


def test_deadline_survives_a_restart(lab):
    engine = lab.engine()
    gone = lab.agent(engine, "edge-gone", None)
    engine.wait_online("edge-gone")
    gone.stop()
    wait_until(lambda: engine.nodes()["edge-gone"]["state"] == "offline")
    _, _, body = engine.purge([SITE + "/f/1.css"], deadline_s=2)
    engine.kill9()
    engine.start()
    task = engine.wait_task(body["task_id"], timeout=10)
    assert task["status"] == "failed"
    assert [n["reason"] for n in failures(engine, body["task_id"])] == ["node_offline"]


def test_removed_node_fails_its_items(lab):
    from conftest import run_cli
    engine = one_node_up_one_gone(lab)
    _, _, body = engine.purge([SITE + "/f/1.css"])
    wait_until(lambda: engine.task(body["task_id"])["counters"]["succeeded"] == 1)
    assert engine.task(body["task_id"])["status"] == "running"
    result = run_cli(engine.url, "nodes", "remove", "edge-gone")
    assert result.returncode == 0, result.stderr
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "partial"
    assert [(n["node"], n["reason"]) for n in failures(engine, body["task_id"])] == [("edge-gone", "node_removed")]
    assert "edge-gone" not in engine.nodes()
    _, _, later = engine.purge([SITE + "/f/2.css"])
    assert engine.wait_task(later["task_id"])["counters"]["total"] == 1  # no longer planned onto it
    missing = run_cli(engine.url, "nodes", "remove", "edge-gone")
    assert missing.returncode == 3 and "node_not_found" in missing.stderr


def slow_setup(lab, *engine_args):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    proxy = lab.add(FaultProxy(edge, delay_s=1.0).start())
    engine = lab.engine(*engine_args)
    agent = lab.agent(engine, "edge-1", None, extra_args=("--cache-url", proxy.url, "--concurrency", "8",
                                                          "--window", "8"))
    engine.wait_online("edge-1")
    _, _, body = engine.request("POST", "/v1/preload", {"urls": [SITE + f"/f/{i}.css" for i in range(8)]})
    wait_until(lambda: proxy.counts["received"] == 8, what="8 requests at the cache")
    return engine, agent, body["task_id"]


def test_agent_sigterm_finishes_and_reports_its_requests(lab):
    engine, agent, task_id = slow_setup(lab)
    assert agent.stop() == 0  # SIGTERM: waits for the cache, reports, exits 0
    log = agent.read_log()
    assert '"event":"agent.drain","msg":"finishing ' in log, log[-2000:]
    assert "cache requests unfinished" not in log
    task = engine.wait_task(task_id, timeout=10)  # no agent left, yet everything was reported
    assert task["status"] == "done" and task["counters"]["succeeded"] == 8


def test_engine_sigterm_waits_for_results_in_flight(lab):
    engine, agent, task_id = slow_setup(lab)
    assert engine.stop() == 0
    engine.start()
    task = engine.wait_task(task_id, timeout=10)
    assert task["status"] == "done" and task["counters"]["succeeded"] == 8


def test_identical_purges_in_a_burst_are_merged(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    proxy = lab.add(FaultProxy(edge, port=edge.purge_port).start())
    engine = lab.engine()
    agent_args = ("--nginx-purge-url", proxy.url, "--window", "8")
    first = lab.agent(engine, "edge-1", None, extra_args=agent_args)
    engine.wait_online("edge-1")
    first.stop()  # registered, now offline
    wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline")
    urls = [SITE + f"/f/{i}.css" for i in range(5)]
    ids = [engine.purge(urls)[2]["task_id"] for _ in range(20)]  # 100 (item, node) results asked
    lab.agent(engine, "edge-1", None, extra_args=agent_args)  # the burst meets in the queue
    for task_id in ids:
        task = engine.wait_task(task_id, timeout=30)
        assert task["status"] == "done" and task["counters"]["succeeded"] == 5
    # Each URL went out once, after every task had been accepted; the other 19 waited for it.
    assert engine.nodes()["edge-1"]["items_merged"] == 95
    assert proxy.counts["received"] == 5


def test_every_node_id_an_agent_registers_can_be_removed(lab):
    """Ids of any length the Hello takes (1..64) and of dots alone, which path normalisation
    would fold away, are listed and removable like any other."""
    engine = lab.engine()
    ids = ["n" * 26, "n" * 27, "x" * 40, "z" * 64, ".", "..", "...", "a.b", "_-."]
    for node_id in ids:
        agent = lab.agent(engine, node_id)
        engine.wait_online(node_id)
        agent.stop()
    assert set(ids) <= set(engine.nodes())
    for node_id in ids:
        status, _, body = engine.admin("DELETE", f"/v1/nodes/{node_id}")
        assert (status, body) == (200, {"node_id": node_id, "removed": True}), node_id
    assert not set(ids) & set(engine.nodes())
    assert engine.admin("DELETE", "/v1/nodes/" + "z" * 65)[0] == 404
    assert engine.admin("DELETE", "/v1/nodes/a%2Fb")[0] == 404
