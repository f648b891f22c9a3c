"""The task API end to end: submit, read, list, page, cancel, health, keep-alive."""
import http.client
import json
import re
import subprocess

from conftest import start_simulated_agents, wait_until

ID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def test_purge_is_accepted_and_readable(engine):
    status, headers, body = engine.purge(["https://Example.com:443/a.png"],
                                         prefixes=["https://example.com/img/"], mode="invalidate",
                                         nodes={"groups": ["eu"]}, deadline_s=90)
    assert status == 202
    assert headers["content-type"] == "application/json"
    assert ID_RE.match(body["task_id"])
    assert body["status"] == "queued"
    assert body["type"] == "purge"
    assert body["mode"] == "invalidate"
    assert body["targets"] == {"urls": 1, "prefixes": 1, "regexes": 0, "tags": 0}
    assert body["nodes"] == {"groups": ["eu"]}
    assert body["deadline_s"] == 90

    # The task is planned onto its nodes (one offline node in group eu) right after the 202.
    task = wait_until(lambda: (lambda t: t if t["counters"]["total"] else None)(engine.task(body["task_id"])))
    waiting = task.pop("waiting_for")  # its one node is offline
    assert {k: v for k, v in task.items() if k != "counters"} == {k: v for k, v in body.items() if k != "counters"}
    assert task["counters"] == {"total": 2, "succeeded": 0, "failed": 0, "pending": 2, "unsupported": 0,
                                "verified": 0}
    assert (waiting["nodes"], waiting["online"], waiting["offline"]) == (1, 0, 1)
    assert task["created_at"].endswith("Z") and task["finished_at"] is None


def test_preload_keeps_headers(engine):
    status, _, body = engine.request("POST", "/v1/preload", {
        "urls": ["https://example.com/video.mp4"], "headers": {"Accept-Encoding": "gzip"}})
    assert status == 202
    assert body["type"] == "preload" and body["mode"] is None
    status, _, task = engine.request("GET", f"/v1/tasks/{body['task_id']}")
    assert task["headers"] == {"Accept-Encoding": "gzip"}


def test_items_list_normalised_targets_in_pages(engine):
    urls = [f"HTTPS://EXAMPLE.COM/{i}" for i in range(5)]
    _, _, body = engine.purge(urls, tags=["t1"])
    task_id = body["task_id"]
    status, _, page = engine.request("GET", f"/v1/tasks/{task_id}/items?limit=4")
    assert status == 200
    assert [item["target"] for item in page["items"]] == [f"https://example.com/{i}" for i in range(4)]
    assert all(item["state"] == "pending" and item["kind"] == "url" for item in page["items"])
    assert page["next_cursor"] is not None
    _, _, rest = engine.request("GET", f"/v1/tasks/{task_id}/items?limit=4&cursor={page['next_cursor']}")
    assert [(i["kind"], i["target"]) for i in rest["items"]] == [("url", "https://example.com/4"), ("tag", "t1")]
    assert rest["next_cursor"] is None
    _, _, failed = engine.request("GET", f"/v1/tasks/{task_id}/items?state=failed")
    assert failed["items"] == []


def test_task_ids_increase_and_list_is_newest_first(engine):
    ids = [engine.purge([f"https://example.com/{i}"])[2]["task_id"] for i in range(6)]
    assert ids == sorted(ids) and len(set(ids)) == 6
    status, _, page = engine.request("GET", "/v1/tasks?limit=4")
    assert status == 200
    assert [t["task_id"] for t in page["tasks"]] == ids[::-1][:4]
    _, _, rest = engine.request("GET", f"/v1/tasks?limit=4&cursor={page['next_cursor']}")
    assert [t["task_id"] for t in rest["tasks"]] == ids[::-1][4:]
    assert rest["next_cursor"] is None


def test_cancel_ends_the_task_once(engine):
    _, _, kept = engine.purge(["https://example.com/keep"])
    _, _, body = engine.purge(["https://example.com/a", "https://example.com/b"])
    task_id = body["task_id"]
    status, _, task = engine.request("DELETE", f"/v1/tasks/{task_id}")
    assert status == 200
    assert task["status"] == "canceled"
    assert task["finished_at"] is not None
    _, _, items = engine.request("GET", f"/v1/tasks/{task_id}/items?state=canceled")
    assert len(items["items"]) == 2
    status, _, again = engine.request("DELETE", f"/v1/tasks/{task_id}")
    assert status == 409
    assert again["error"]["code"] == "task_final"
    _, _, canceled = engine.request("GET", "/v1/tasks?state=canceled")
    assert [t["task_id"] for t in canceled["tasks"]] == [task_id]
    _, _, queued = engine.request("GET", "/v1/tasks?state=queued")
    assert [t["task_id"] for t in queued["tasks"]] == [kept["task_id"]]


def test_health_ready_and_nodes(engine):
    assert engine.request("GET", "/healthz")[:1] == (200,)
    status, _, body = engine.request("GET", "/readyz")
    assert (status, body) == (200, {"status": "ready"})
    status, _, body = engine.request("GET", "/v1/nodes")
    assert status == 200
    [node] = body["nodes"]
    assert node["node_id"] == "edge-offline" and node["state"] == "offline"
    assert node["groups"] == ["eu", "us"] and node["cache"] == "nginx"
    assert node["queue_depth"] == 0 and node["in_flight"] == 0


def test_keep_alive_serves_many_requests_on_one_connection(engine):
    conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=10)
    for i in range(20):
        status, headers, _ = engine.request("POST", "/v1/purge", {"urls": [f"https://e.com/{i}"]}, conn=conn)
        assert status == 202
        assert headers.get("connection", "keep-alive").lower() != "close"
    status, headers, _ = engine.request("GET", "/v1/tasks/01M87BCTXNBXVP8BSWWYX7577R", conn=conn)
    assert status == 404 and headers.get("connection", "").lower() != "close"
    conn.close()


def test_restart_keeps_every_task(make_engine, data_dir):
    engine = make_engine()
    ids = [engine.purge([f"https://example.com/{i}"])[2]["task_id"] for i in range(10)]
    assert engine.stop() == 0
    engine.start()
    for task_id in ids:
        status, _, task = engine.request("GET", f"/v1/tasks/{task_id}")
        assert status == 200 and task["status"] == "queued"


def test_http2_cleartext_is_served(engine):
    for mode in ("--http2-prior-knowledge", "--http2"):
        result = subprocess.run(["curl", "-s", mode, "-w", "\n%{http_version} %{http_code}", "-d",
                                 '{"urls":["https://h2.example/a"]}', f"{engine.url}/v1/purge"],
                                capture_output=True, text=True, timeout=10)
        body, status_line = result.stdout.rsplit("\n", 1)
        assert status_line == "2 202"
        assert ID_RE.match(json.loads(body)["task_id"])


def test_a_page_of_items_is_cut_where_it_fits(make_engine):
    """limit=1000 is documented; on many nodes the page holds fewer rows, says more follow, and
    every item is still reached (the benchmarks' simulated agents answer every item)."""
    from lab import start_simulated_agents
    engine = make_engine("--max-items", "1000", offline_node=False)
    sim = start_simulated_agents(engine, 1000)
    try:
        urls = [f"https://a.example/{i}.css" for i in range(1000)]
        task_id = engine.purge(urls)[2]["task_id"]
        assert engine.wait_task(task_id, timeout=120)["counters"]["succeeded"] == 1_000_000
        seen, cursor, pages = [], None, 0
        while True:
            query = "?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            status, _, page = engine.request("GET", f"/v1/tasks/{task_id}/items{query}")
            assert status == 200, page
            assert page["items"] and all(len(item["nodes"]) == 1000 for item in page["items"])
            seen += [item["target"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == urls and pages > 1
    finally:
        sim.kill()
        sim.wait()


def test_nodes_are_listed_a_page_at_a_time_with_a_summary_of_all(engine):
    sim = start_simulated_agents(engine, 1200)
    try:
        wait_until(lambda: engine.request("GET", "/v1/nodes?state=online&limit=1")[2]["matching"] == 1200,
                   timeout=60, what="1,200 simulated nodes online")
        status, _, first = engine.request("GET", "/v1/nodes")
        assert status == 200 and len(first["nodes"]) == 500 and first["matching"] == 1201
        assert first["summary"]["online"] == 1200 and first["summary"]["offline"] == 1
        assert first["summary"]["groups"] == {"eu": {"online": 0, "offline": 1},
                                              "us": {"online": 0, "offline": 1}}
        seen, cursor = [], None
        while True:
            page = engine.request("GET", "/v1/nodes?limit=1000" + (f"&cursor={cursor}" if cursor else ""))[2]
            seen += [n["node_id"] for n in page["nodes"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 1201  # every node once, in registration order
        assert seen[0] == "edge-offline" and seen[1:] == sorted(seen[1:])
        found = engine.request("GET", "/v1/nodes?q=sim-0011")[2]
        assert found["matching"] == 10 and [n["node_id"] for n in found["nodes"]] == [
            f"sim-0011{i}" for i in range(10)]
        offline = engine.request("GET", "/v1/nodes?state=offline")[2]
        assert [n["node_id"] for n in offline["nodes"]] == ["edge-offline"]
        assert engine.request("GET", "/v1/nodes?q=eu")[2]["matching"] == 1  # a group matches too
        for query, field in (("state=gone", "state"), ("cursor=x", "cursor"), ("limit=0", "limit"),
                             ("q=a/b", "q"), ("page=2", "page")):
            status, _, body = engine.request("GET", f"/v1/nodes?{query}")
            assert status == 400 and body["error"]["field"] == field, (query, body)
    finally:
        sim.kill()
        sim.wait()
