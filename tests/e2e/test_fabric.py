"""Tasks reach real nginx edge caches through real agents, and results come back per node."""
import datetime
import json
import os
import select
import socket
import struct
import time

import pytest

from conftest import Engine, closed_by_server, fetch, free_port, run_cli, wait_until
from conftest import warm as warm_one

SITE = "http://www.example.com"
FILES = {f"/img/{i}.png": b"p" * 64 for i in range(3)}
FILES.update({"/a.css": b"body{}", "/b.js": b"js", "/tagged/t.js": b"tagged", "/big.bin": b"b" * 4096,
              "/doc/x.html": b"x", "/doc/y.txt": b"y"})


@pytest.fixture
def two_edges(lab):
    origin = lab.origin(FILES)
    edges = [lab.edge("edge1", origin), lab.edge("edge2", origin)]
    engine = lab.engine()
    lab.agent(engine, "edge-1", edges[0], groups="eu")
    lab.agent(engine, "edge-2", edges[1], groups="us")
    engine.wait_online("edge-1", "edge-2")
    return engine, edges


def warm(edges, *paths):
    """Caches every path on every edge (nginx may still be renaming the file into place when the
    first response has ended: the next request can be a MISS, so wait for the HIT)."""
    for edge in edges:
        for path in paths:
            warm_one(edge, SITE + path)


def cache_states(edges, path):
    return [fetch(edge, SITE + path)[1] for edge in edges]


def items(engine, task_id, query=""):
    return engine.request("GET", f"/v1/tasks/{task_id}/items{query}")[2]["items"]


def test_purge_by_url_removes_from_every_edge(two_edges):
    engine, edges = two_edges
    warm(edges, "/a.css", "/b.js")
    _, _, body = engine.purge([SITE + "/a.css"])
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "done"
    # both edges checked their cache directory afterwards: verified
    assert task["counters"] == {"total": 2, "succeeded": 2, "failed": 0, "pending": 0, "unsupported": 0,
                                "verified": 2}
    assert task["started_at"] and task["finished_at"]
    assert cache_states(edges, "/a.css") == ["MISS", "MISS"]
    assert cache_states(edges, "/b.js") == ["HIT", "HIT"]  # only what was asked
    [item] = items(engine, body["task_id"])
    assert item["state"] == "succeeded"
    assert sorted(n["node"] for n in item["nodes"]) == ["edge-1", "edge-2"]


def test_purge_of_uncached_url_succeeds(two_edges):
    engine, _ = two_edges
    _, _, body = engine.purge([SITE + "/never-fetched.css"])
    assert engine.wait_task(body["task_id"])["status"] == "done"


@pytest.mark.parametrize("fields,gone,kept", [
    ({"prefixes": [SITE + "/img/"]}, ["/img/0.png", "/img/2.png"], ["/a.css", "/doc/x.html"]),
    ({"regexes": [r"^http://www\.example\.com/doc/.*\.html$"]}, ["/doc/x.html"], ["/doc/y.txt", "/a.css"]),
    ({"tags": ["product-42"]}, ["/tagged/t.js"], ["/a.css", "/img/1.png"]),
])
def test_prefix_regex_and_tag_purges_use_the_cache_dir(two_edges, fields, gone, kept):
    engine, edges = two_edges
    warm(edges, *gone, *kept)
    _, _, body = engine.request("POST", "/v1/purge", fields)
    assert engine.wait_task(body["task_id"])["status"] == "done"
    for path in gone:
        assert cache_states(edges, path) == ["MISS", "MISS"], path
    for path in kept:
        assert cache_states(edges, path) == ["HIT", "HIT"], path


def test_preload_makes_urls_hits(two_edges):
    engine, edges = two_edges
    _, _, body = engine.request("POST", "/v1/preload", {"urls": [SITE + "/big.bin", SITE + "/b.js"]})
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "done" and task["counters"]["succeeded"] == 4
    assert cache_states(edges, "/big.bin") == ["HIT", "HIT"]
    assert cache_states(edges, "/b.js") == ["HIT", "HIT"]


def test_preload_sends_the_task_headers_through_the_cache(lab):
    """The task's headers go with every preload request: the edge passes them to the origin on
    the miss, and the origin's access log (combined format) shows the two it records."""
    origin = lab.origin(FILES)
    edges = [lab.edge("edge1", origin), lab.edge("edge2", origin)]
    engine = lab.engine()
    for i, edge in enumerate(edges):
        lab.agent(engine, f"edge-{i + 1}", edge)
    engine.wait_online("edge-1", "edge-2")
    headers = {"Referer": "https://probe.example/from-the-task", "User-Agent": "cdnrefresh-probe/1"}
    _, _, body = engine.request("POST", "/v1/preload", {"urls": [SITE + "/b.js"], "headers": headers})
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "done" and task["counters"]["succeeded"] == 2
    with open(os.path.join(origin.prefix, "access.log")) as f:
        fetched = [line for line in f if "/b.js" in line]
    assert len(fetched) == 2, fetched  # one miss per edge
    for line in fetched:
        assert '"https://probe.example/from-the-task"' in line and '"cdnrefresh-probe/1"' in line, line


def test_groups_select_nodes(two_edges):
    engine, edges = two_edges
    warm(edges, "/a.css")
    _, _, body = engine.purge([SITE + "/a.css"], nodes={"groups": ["us"]})
    task = engine.wait_task(body["task_id"])
    assert task["counters"]["total"] == 1
    assert cache_states(edges, "/a.css") == ["HIT", "MISS"]


def test_invalidate_is_unsupported_on_nginx(two_edges):
    engine, _ = two_edges
    _, _, body = engine.purge([SITE + "/a.css"], mode="invalidate")
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "failed"
    assert task["counters"]["unsupported"] == 2 and task["counters"]["succeeded"] == 0
    [item] = items(engine, body["task_id"], "?state=unsupported")
    assert {n["reason"] for n in item["nodes"]} == {"nginx_cannot_invalidate"}


def test_node_with_cache_down_fails_its_items_and_task_is_partial(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine()
    lab.agent(engine, "edge-up", edge)
    lab.agent(engine, "edge-down", None)  # its cache URL has nothing listening
    engine.wait_online("edge-up", "edge-down")
    _, _, body = engine.purge([SITE + "/a.css", SITE + "/b.js"])
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "partial"
    assert task["counters"] == {"total": 4, "succeeded": 2, "failed": 2, "pending": 0, "unsupported": 0,
                                "verified": 2}
    failed = items(engine, body["task_id"], "?state=failed")
    assert [i["target"] for i in failed] == [SITE + "/a.css", SITE + "/b.js"]
    for item in failed:
        down = next(n for n in item["nodes"] if n["node"] == "edge-down")
        up = next(n for n in item["nodes"] if n["node"] == "edge-up")
        assert down == {"node": "edge-down", "state": "failed", "reason": "connection_refused"}
        assert up["state"] == "succeeded"
    nodes = engine.nodes()
    assert nodes["edge-down"]["items_failed"] == 2 and nodes["edge-up"]["items_done"] == 2


def edge_1_online_edge_2_gone(lab, origin):
    """An engine with two real edges in front of origin: edge-1's agent connected, edge-2's
    registered and gone (its node offline, tasks planned onto it wait for it)."""
    edges = [lab.edge("edge1", origin), lab.edge("edge2", origin)]
    engine = lab.engine()
    lab.agent(engine, "edge-1", edges[0])
    late = lab.agent(engine, "edge-2", edges[1])
    engine.wait_online("edge-1", "edge-2")
    late.stop()
    wait_until(lambda: engine.nodes()["edge-2"]["state"] == "offline")
    return engine, edges


def test_offline_node_gets_its_work_when_it_connects(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine()
    agent = lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    agent.stop()
    wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline")
    warm([edge], "/a.css")
    _, _, body = engine.purge([SITE + "/a.css"])
    time.sleep(0.3)
    assert engine.task(body["task_id"])["status"] == "queued"
    assert engine.nodes()["edge-1"]["queue_depth"] == 1
    lab.agent(engine, "edge-1", edge)
    assert engine.wait_task(body["task_id"])["status"] == "done"
    assert cache_states([edge], "/a.css") == ["MISS"]


def test_a_task_done_on_every_online_node_says_it_waits_for_the_offline_one(lab):
    """GET /v1/tasks/{id}, `cdnrefresh task` and `--wait` tell what a running task waits for: how
    many nodes, how many of them offline and since when — not only "running"."""
    origin = lab.origin(FILES)
    engine, edges = edge_1_online_edge_2_gone(lab, origin)
    stopped = time.time()  # just after edge-2's agent stopped
    warm(edges, "/a.css")
    _, _, body = engine.purge([SITE + "/a.css"])
    task_id = body["task_id"]
    wait_until(lambda: engine.task(task_id)["counters"]["succeeded"] == 1)
    task = engine.task(task_id)
    waiting = task["waiting_for"]
    assert (task["status"], waiting["nodes"], waiting["online"], waiting["offline"]) == ("running", 1, 0, 1)
    since = datetime.datetime.fromisoformat(waiting["offline_since"].replace("Z", "+00:00")).timestamp()
    assert stopped - 30 <= since <= stopped + 1, waiting  # its agent's last heartbeat
    shown = run_cli(engine.url, "task", task_id)
    assert f"waiting for: 1 nodes, 1 of them offline (last seen {waiting['offline_since']})" in shown.stdout
    waited = run_cli(engine.url, "purge", SITE + "/b.js", "--wait", "--timeout", "1")
    assert waited.returncode == 5 and "waiting for 1 offline node, last seen" in waited.stderr, waited.stderr
    lab.agent(engine, "edge-2", edges[1])
    task = engine.wait_task(task_id)
    assert task["status"] == "done" and "waiting_for" not in task
    assert cache_states(edges, "/a.css") == ["MISS", "MISS"]


def test_tasks_an_offline_node_misses_leave_memory_and_all_reach_it_when_it_returns(lab):
    """Tasks done everywhere but on an offline node are parked out of the engine's memory (in the
    store, tasks_parked in /v1/stats), across a kill -9 too; when the node's agent is back it is
    sent every one of them, each ends done, and its cache no longer holds any of the objects."""
    paths = [f"/m/{i}.css" for i in range(40)]
    origin = lab.origin({path: path.encode() for path in paths})
    engine, edges = edge_1_online_edge_2_gone(lab, origin)
    warm(edges, *paths)

    def parked():
        return engine.admin("GET", "/v1/stats")[2]["fabric"]["tasks_parked"]

    ids = [engine.purge([SITE + path])[2]["task_id"] for path in paths]
    wait_until(lambda: parked() == len(paths), timeout=15, what="every task parked")
    assert engine.admin("GET", "/v1/stats")[2]["fabric"]["tasks_in_progress"] == 0
    task = engine.task(ids[7])
    assert task["status"] == "running" and task["waiting_for"]["offline"] == 1
    assert cache_states(edges, paths[7]) == ["MISS", "HIT"]
    engine.kill9()
    engine.start()  # read back in full, and parked again
    wait_until(lambda: parked() == len(paths), timeout=15, what="every task parked after the restart")
    lab.agent(engine, "edge-2", edges[1])
    for task_id in ids:
        task = engine.wait_task(task_id)
        assert task["status"] == "done" and task["counters"]["succeeded"] == 2, task
    assert parked() == 0
    for path in paths:  # (edge-1's copy of paths[7] was fetched again above)
        assert cache_states(edges if path != paths[7] else edges[1:], path) == (
            ["MISS", "MISS"] if path != paths[7] else ["MISS"]), path
    [item] = items(engine, ids[-1])
    assert sorted((n["node"], n["state"], n["verified"]) for n in item["nodes"]) == [
        ("edge-1", "succeeded", True), ("edge-2", "succeeded", True)]


def test_past_the_memory_bound_tasks_get_503_backlog_full_and_nothing_is_lost(lab):
    """Results owed by online nodes are held in memory: past limits.max_unfinished_results a new
    task gets 503 backlog_full with Retry-After (here an agent alive but not answering holds
    them: its link stays up, so nothing is parked), and is taken once they are answered."""
    import signal
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine("--max-unfinished-results", "2", "--heartbeat-ms", "20000")
    agent = lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    warm([edge], "/a.css", "/b.js")
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        accepted = [engine.purge([SITE + path])[2]["task_id"] for path in ("/a.css", "/b.js")]
        status, headers, body = engine.purge([SITE + "/img/0.png"])
        assert status == 503 and body["error"]["code"] == "backlog_full", body
        assert "limits.max_unfinished_results (2)" in body["error"]["message"]
        assert 1 <= int(headers["retry-after"]) <= 60
        fabric = engine.admin("GET", "/v1/stats")[2]["fabric"]
        assert (fabric["backlog_results"], fabric["tasks_parked"]) == (2, 0), fabric
        assert cache_states([edge], "/a.css") == ["HIT"]  # not purged yet: its agent is stopped
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    for task_id in accepted:
        assert engine.wait_task(task_id)["status"] == "done"
    assert cache_states([edge], "/a.css") == ["MISS"] and cache_states([edge], "/b.js") == ["MISS"]
    status, _, body = engine.purge([SITE + "/img/0.png"])  # the client's retry is taken now
    assert status == 202 and engine.wait_task(body["task_id"])["status"] == "done"


@pytest.mark.parametrize("bound", [2, 5])
def test_past_the_store_bound_tasks_get_503_offline_backlog_full_until_their_node_is_back(lab, bound):
    """Tasks only an offline node owes wait in the store, not in memory: they are not in the memory
    bound (limits.max_unfinished_results is 1 here), and past limits.max_parked_targets a new task
    gets 503 offline_backlog_full with a Retry-After of the time to the earliest deadline among
    them, which is when the first of them can leave; nothing accepted is lost."""
    paths = [f"/parked/{i}.css" for i in range(bound + 1)]
    origin = lab.origin({path: path.encode() for path in paths})
    edge = lab.edge("edge1", origin)
    engine = lab.engine("--max-parked-targets", str(bound), "--max-unfinished-results", "1")
    agent = lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    agent.stop()
    wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline")
    warm([edge], *paths)

    def fabric():
        return engine.admin("GET", "/v1/stats")[2]["fabric"]

    accepted = []
    first_accepted = time.monotonic()
    for n, path in enumerate(paths[:bound]):
        status, _, body = engine.purge([SITE + path], deadline_s=100 + 60 * n)
        assert status == 202, body
        accepted.append(body["task_id"])
        # Parked at the next sweep: out of the memory bound, so the next one is taken.
        wait_until(lambda: fabric()["tasks_parked"] == n + 1, timeout=10, what=f"{n + 1} parked")
    assert (fabric()["parked_targets"], fabric()["backlog_results"]) == (bound, 0)
    status, headers, body = engine.purge([SITE + paths[bound]])
    waited = time.monotonic() - first_accepted
    assert status == 503 and body["error"]["code"] == "offline_backlog_full", body
    assert f"limits.max_parked_targets ({bound})" in body["error"]["message"]
    assert 100 - waited - 2 <= int(headers["retry-after"]) <= 100, (headers, waited)  # the first's deadline
    assert cache_states([edge], paths[0]) == ["HIT"]  # nothing went out yet: the node is offline
    lab.agent(engine, "edge-1", edge)
    for task_id in accepted:
        assert engine.wait_task(task_id)["status"] == "done"
    for path in paths[:bound]:
        assert cache_states([edge], path) == ["MISS"], path
    assert fabric()["tasks_parked"] == 0
    status, _, body = engine.purge([SITE + paths[bound]])  # the client's retry is taken now
    assert status == 202 and engine.wait_task(body["task_id"])["status"] == "done"
    assert cache_states([edge], paths[bound]) == ["MISS"]


def test_engine_killed_resends_only_what_a_node_had_not_finished(lab):
    """A node's watermark, saved with the results, says what it finished: after a kill -9 the
    engine sends an offline node's work when it returns, and not the finished node's again."""
    origin = lab.origin(FILES)
    engine, edges = edge_1_online_edge_2_gone(lab, origin)
    warm(edges, "/a.css")
    _, _, body = engine.purge([SITE + "/a.css"])
    wait_until(lambda: engine.task(body["task_id"])["counters"]["succeeded"] == 1)
    assert cache_states(edges, "/a.css") == ["MISS", "HIT"]
    warm(edges[:1], "/a.css")  # edge-1 caches it again; a second purge there would show
    time.sleep(2.5)  # watermarks are saved every second
    engine.kill9()
    engine.start()
    engine.wait_online("edge-1")
    task = engine.task(body["task_id"])
    assert task["status"] == "running"
    assert (task["counters"]["succeeded"], task["counters"]["pending"]) == (1, 1)
    time.sleep(1)
    assert cache_states(edges, "/a.css") == ["HIT", "HIT"]  # edge-1 was not sent it again
    lab.agent(engine, "edge-2", edges[1])
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "done" and task["counters"]["succeeded"] == 2
    assert cache_states(edges[1:], "/a.css") == ["MISS"]
    [item] = items(engine, body["task_id"])
    assert sorted((n["node"], n["state"], n["verified"]) for n in item["nodes"]) == [
        ("edge-1", "succeeded", True), ("edge-2", "succeeded", True)]


def test_a_cancel_says_which_nodes_purged_and_which_never_ran_it_even_across_a_kill(lab):
    """A canceled task reads, node by node, as what happened: succeeded where the edge purged
    (though its watermark was not saved past the task yet), canceled where the task never ran —
    also when the engine is killed the moment the cancel is answered, before it saved anything
    more, and the offline node's watermark then moves past the task (it is owed nothing)."""
    origin = lab.origin(FILES)
    engine, edges = edge_1_online_edge_2_gone(lab, origin)
    warm(edges, "/a.css", "/b.js")
    expected = [("edge-1", "succeeded", True), ("edge-2", "canceled", False)]

    def node_results(task_id):
        [item] = items(engine, task_id)
        assert item["state"] == "canceled"
        return sorted((n["node"], n["state"], n.get("verified", False)) for n in item["nodes"])

    def cancel_after_edge_1(path):
        task_id = engine.purge([SITE + path])[2]["task_id"]
        wait_until(lambda: engine.task(task_id)["counters"]["succeeded"] == 1, interval=0.01)
        status, _, task = engine.request("DELETE", f"/v1/tasks/{task_id}")
        assert status == 200 and task["status"] == "canceled"
        return task_id

    early = cancel_after_edge_1("/a.css")  # within the second before edge-1's watermark is saved
    wait_until(lambda: node_results(early) == expected, timeout=2, what="the cancel's results saved")
    # Killed the moment the cancel is answered: mostly after the fabric's save all the same (the
    # store's own test, store_cancel_keeps_unfinished_nodes_canceled_whatever_their_watermarks,
    # holds the moment in between); edge-1 may then read canceled, never edge-2 succeeded.
    killed = cancel_after_edge_1("/b.js")
    engine.kill9()
    engine.start()
    lab.agent(engine, "edge-2", edges[1])  # owed neither task: it is sent nothing of them
    engine.wait_online("edge-1", "edge-2")
    later = engine.purge([SITE + "/img/0.png"])[2]["task_id"]
    assert engine.wait_task(later)["status"] == "done"
    time.sleep(1.5)  # both watermarks, saved every second, are past the canceled tasks now
    assert node_results(killed) in (expected, [("edge-1", "canceled", False), expected[1]])
    assert node_results(early) == expected
    assert cache_states(edges, "/a.css") == ["MISS", "HIT"]
    assert cache_states(edges, "/b.js") == ["MISS", "HIT"]


def many_urls(n):
    return [f"{SITE}/many/{i}.css" for i in range(n)]


def assert_recorded_once(engine, task_id, total):
    task = engine.wait_task(task_id, timeout=60)
    assert task["status"] == "done"
    assert task["counters"] == {"total": total, "succeeded": total, "failed": 0, "pending": 0,
                                "unsupported": 0, "verified": total}
    seen, cursor = 0, None
    while True:
        page = engine.request("GET", f"/v1/tasks/{task_id}/items?limit=1000" + (f"&cursor={cursor}" if cursor else ""))[2]
        seen += sum(1 for i in page["items"] for n in i["nodes"] if n["state"] == "succeeded")
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == total


# Enough sequential work (one request at a time) that the kill lands in the middle of it.
BIG_TASK = 20000
SLOW_AGENT = ("--concurrency", "1", "--window", "4")


def test_agent_killed_mid_task_completes_after_restart(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine("--max-items", str(BIG_TASK))
    agent = lab.agent(engine, "edge-1", edge, extra_args=SLOW_AGENT)
    engine.wait_online("edge-1")
    _, _, body = engine.request("POST", "/v1/purge", {"urls": many_urls(BIG_TASK)})
    wait_until(lambda: engine.task(body["task_id"])["counters"]["succeeded"] > 0)
    agent.kill9()
    assert engine.task(body["task_id"])["counters"]["pending"] > 0
    lab.agent(engine, "edge-1", edge, extra_args=SLOW_AGENT)
    assert_recorded_once(engine, body["task_id"], BIG_TASK)


def test_engine_killed_mid_task_completes_after_restart(lab):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine("--max-items", str(BIG_TASK))
    lab.agent(engine, "edge-1", edge, extra_args=SLOW_AGENT)
    engine.wait_online("edge-1")
    _, _, body = engine.request("POST", "/v1/purge", {"urls": many_urls(BIG_TASK)})
    wait_until(lambda: engine.task(body["task_id"])["counters"]["succeeded"] > 0)
    engine.kill9()
    engine.start()  # same data dir and ports: the agent reconnects by itself
    assert engine.task(body["task_id"])["counters"]["pending"] > 0
    assert_recorded_once(engine, body["task_id"], BIG_TASK)


def test_wrong_token_and_duplicate_node_are_refused(lab):
    engine = lab.engine("--agent-token", "s3cret")
    bad = lab.agent(engine, "edge-1", None, token="guess")
    wait_until(lambda: not bad.running(), what="refused agent to exit")
    assert bad.proc.returncode == 1
    bad.expected_exit = 1
    assert "wrong_token" in bad.read_log()
    assert "fix the agent's configuration" in bad.read_log()
    good = lab.agent(engine, "edge-1", None, token="s3cret")
    engine.wait_online("edge-1")
    # A second agent under the same node id is refused, and keeps trying (the first one may be a
    # link the engine has not yet seen die): it takes over once the first is gone.
    twin = lab.agent(engine, "edge-1", None, token="s3cret")
    wait_until(lambda: twin.read_log().count("duplicate_node") >= 2, what="twin refused twice")
    assert twin.running() and "trying again after a pause" in twin.read_log()
    assert good.running() and engine.nodes()["edge-1"]["state"] == "online"
    good.stop()
    wait_until(lambda: "link.welcome" in twin.read_log(), timeout=20, what="twin welcomed")
    engine.wait_online("edge-1")


def test_a_node_that_never_finished_an_item_is_flagged(two_edges, lab):
    engine, edges = two_edges
    ghost = lab.agent(engine, "ghost-1", None)  # says Hello, then leaves before any work
    engine.wait_online("ghost-1")
    ghost.stop()
    wait_until(lambda: engine.nodes()["ghost-1"]["state"] == "offline", what="ghost offline")
    warm(edges, "/a.css")
    _, _, body = engine.purge([SITE + "/a.css"], deadline_s=1)
    engine.wait_task(body["task_id"])
    nodes = engine.nodes()
    for real in ("edge-1", "edge-2"):
        assert nodes[real]["first_result_at"] and "warning" not in nodes[real]
    assert nodes["ghost-1"]["first_result_at"] is None
    assert "never finished an item" in nodes["ghost-1"]["warning"]
    # What a node proved is kept across a restart of the engine.
    engine.stop()
    engine.start()
    nodes = engine.nodes()
    assert nodes["edge-1"]["first_result_at"] and "warning" not in nodes["edge-1"]
    assert "warning" in nodes["ghost-1"]


def hello_outcome(lab, engine, node_id, token):
    """Starts an agent; returns "online", or the code of the refusal it got."""
    agent = lab.agent(engine, node_id, None, token=token)
    wait_until(lambda: not agent.running() or engine.nodes().get(node_id, {}).get("state") == "online",
               what=f"{node_id} welcomed or refused")
    if agent.running():
        agent.stop()
        return "online"
    agent.expected_exit = 1
    log = agent.read_log()
    return "wrong_token" if "wrong_token" in log else log


def engine_rss_kib(engine):
    with open(f"/proc/{engine.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def hello_header(length):
    return struct.pack(">I", length) + b"\x01\x00\x00\x01"  # a Hello frame of length bytes


def send_quietly(sock, data):
    """Sends what the engine takes before it closes the connection."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_a_peer_that_never_says_hello_holds_little_memory(lab):
    engine = lab.engine("--agent-pending-max", "40", "--agent-pending-per-address", "20",
                        "--agent-hello-timeout-ms", "3000")
    host, port = engine.agent_address.split(":")

    def connect(source="127.0.0.1"):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect((host, int(port)))
        return sock

    # A Hello announced at the link's full frame size (16 MiB) is refused at its header: before its
    # Welcome a peer may send no more than a Hello needs.
    before = engine_rss_kib(engine)
    big = [connect() for _ in range(12)]
    for sock in big:
        send_quietly(sock, hello_header(16 << 20) + b"\0" * (1 << 20))
    assert all(closed_by_server(sock, within_s=5) for sock in big)
    # Half-sent Hellos within that size are held, but each only as far as it goes, and only so many
    # from one address and in all: one more closes the oldest of them (from its address when that
    # cap is the one reached), so the newest connection is the one that gets in.
    held = [connect() for _ in range(20)]
    for sock in held:
        sock.sendall(hello_header(15000) + b"\0" * 10000)
    newest = connect()
    assert closed_by_server(held[0], within_s=5)
    others = [connect("127.0.0.2") for _ in range(20)]
    newer = connect("127.0.0.3")
    assert closed_by_server(held[1], within_s=5)
    waiting = held[2:] + [newest] + others + [newer]
    readable, _, _ = select.select(waiting, [], [], 0.5)  # well within the Hello timeout
    assert readable == [], "the engine closed connections within the caps"
    assert engine_rss_kib(engine) - before < 16 * 1024, "pending peers must hold a Hello each at most"
    log = engine.read_log()
    assert log.count("a frame is larger than the link allows") == len(big)
    assert log.count('"event":"agent.pending_full"') == 1  # logged once for the two evictions
    # Past the Hello timeout (3 s here) every one of them is closed.
    assert all(closed_by_server(sock, within_s=6) for sock in waiting)
    assert "no Hello in time" in engine.read_log()
    # Once they go, a real agent is welcomed as ever.
    for sock in big + held + others + [newest, newer]:
        sock.close()
    lab.agent(engine, "edge-1", None)
    engine.wait_online("edge-1")


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x05\x09\x00\x00\x01hello",          # unknown frame type
    b"\x7f\xff\xff\xff\x01\x00\x00\x01",               # oversized frame
    b"\x00\x00\x00\x04\x01\x00\x00\x01\xff\xff\xff\xff",  # a Hello that does not decode
    b"\x00\x00\x00\x00\x04\x00\x00\x01",               # Work before Hello
    b"GET / HTTP/1.1\r\n\r\n",                          # not the protocol at all
])
def test_garbage_on_the_agent_port_drops_only_that_connection(two_edges, garbage):
    engine, edges = two_edges
    host, port = engine.agent_address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(garbage)
        s.settimeout(5)
        assert s.recv(100) == b""  # the engine closed it
    assert "link.closed" in engine.read_log()
    warm(edges, "/a.css")
    _, _, body = engine.purge([SITE + "/a.css"])
    assert engine.wait_task(body["task_id"])["status"] == "done"


def test_agent_fails_over_to_the_next_engine_address(lab):
    engine = lab.engine()
    dead = f"127.0.0.1:{free_port()}"
    agent = lab.agent(engine, "edge-1", None, extra_args=("--engine", f"{dead},{engine.agent_address}"))
    engine.wait_online("edge-1")
    assert f"link {dead} closed" in agent.read_log()  # tried the dead address first, then moved on


def test_silent_agent_goes_offline_and_comes_back(lab):
    import signal
    engine = lab.engine("--heartbeat-ms", "100", "--heartbeat-misses", "3")
    agent = lab.agent(engine, "edge-1", None)
    engine.wait_online("edge-1")
    agent.proc.send_signal(signal.SIGSTOP)  # alive but silent: no heartbeats
    try:
        wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline", timeout=5, what="node offline")
        assert "missed heartbeats" in engine.read_log()
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    engine.wait_online("edge-1", timeout=10)  # it notices the closed link and reconnects


def test_nodes_listed_in_the_tokens_file_need_their_own_token(lab, data_dir):
    tokens = os.path.join(data_dir, "node-tokens")
    with open(tokens, "w") as f:
        f.write("# node      token\nedge-1 one-secret\nedge-2   two-secret  # its own\n\n")
    os.chmod(tokens, 0o644)
    engine = lab.engine("--agent-token", "shared", "--agent-tokens-file", tokens)
    assert '"event":"node_tokens.permissions"' in engine.read_log()  # 0644 holds secrets: warned

    outcome = lambda node_id, token: hello_outcome(lab, engine, node_id, token)  # noqa: E731

    assert outcome("edge-1", "shared") == "wrong_token"   # listed: the shared token is not enough
    assert outcome("edge-2", "one-secret") == "wrong_token"  # nor another node's token
    assert outcome("edge-1", "one-secret") == "online"
    assert outcome("edge-2", "two-secret") == "online"
    assert outcome("edge-3", "shared") == "online"  # unlisted: the shared token


def test_a_bad_tokens_file_stops_the_engine_at_start(data_dir):
    tokens = os.path.join(data_dir, "node-tokens")
    with open(tokens, "w") as f:
        f.write("edge-1 a\nedge-1 b\n")
    engine = Engine(os.path.join(data_dir, "engine"), ["--agent-tokens-file", tokens])
    with pytest.raises(RuntimeError, match="listed twice"):
        engine.start()


def test_the_agent_talks_to_its_cache_directly_whatever_the_proxy_environment(lab, monkeypatch):
    origin = lab.origin(FILES)
    edge = lab.edge("edge1", origin)
    engine = lab.engine()
    dead = f"http://127.0.0.1:{free_port()}"  # a proxy nobody listens on
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    warm([edge], "/a.css")
    _, _, body = engine.purge([SITE + "/a.css"])
    assert engine.wait_task(body["task_id"])["status"] == "done"
    assert cache_states([edge], "/a.css") == ["MISS"]
