"""GET /v1/stats and GET /metrics against a working engine; /metrics is checked by a strict parser
of the Prometheus text format (HELP and TYPE before samples, cumulative histogram buckets)."""
import http.client
import re
import time

from conftest import free_port, wait_until

SITE = "http://www.example.com"
SAMPLE = re.compile(r'^(cdnrefresh_[a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+|\+Inf)$')


def parse_prometheus(text):
    """Returns {family: {"type": t, "samples": {(name, labels): value}}}; asserts the format."""
    families, current = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in families, f"family {name} twice"
            families[name] = {"help": line.split(" ", 3)[3], "samples": {}}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current and kind in ("counter", "gauge", "histogram"), line
            families[name]["type"] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if families[current]["type"] == "histogram" else name
            assert family == current, f"{name} outside its family {current}"
            families[current]["samples"][(name, match.group(2) or "")] = float(match.group(4))
    for name, family in families.items():
        assert family["help"] and "type" in family, name
        if family["type"] == "counter":
            assert name.endswith("_total"), name
        if family["type"] == "histogram":
            buckets = [v for (n, _), v in family["samples"].items() if n.endswith("_bucket")]
            assert buckets == sorted(buckets), f"{name} buckets are not cumulative"
            assert family["samples"][(name + "_bucket", '{le="+Inf"}')] == family["samples"][(name + "_count", "")]
    return families


def metrics(engine):
    return scrape(engine.port)


def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    return parse_prometheus(body)


def test_stats_and_metrics_follow_the_work(lab):
    origin = lab.origin({"/a.css": b"a"})
    edge = lab.edge("edge1", origin)
    engine = lab.engine()
    agent = lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    ids = [engine.purge([SITE + "/a.css", SITE + f"/{i}.css"])[2]["task_id"] for i in range(3)]
    for task_id in ids:
        assert engine.wait_task(task_id)["status"] == "done"
    engine.purge(["not a url"])
    stats = wait_until(lambda: (lambda s: s if s["rates"]["items_succeeded"]["total"] == 6 else None)(
        engine.request("GET", "/v1/stats")[2]))
    assert stats["tasks_by_state"]["done"] == 3
    assert stats["rates"]["tasks_accepted"]["total"] == 3
    assert stats["rates"]["tasks_accepted"]["per_s_1m"] == 3 / 60
    assert stats["rates"]["api_4xx"]["total"] == 1
    assert stats["fabric"]["nodes_online"] == 1 and stats["fabric"]["in_flight"] == 0
    assert stats["latency"]["task"]["count"] == 3
    assert stats["latency"]["store_commit"]["count"] > 0

    families = metrics(engine)
    samples = {k: v for f in families.values() for k, v in f["samples"].items()}
    assert samples[("cdnrefresh_tasks_accepted_total", "")] == 3
    assert samples[("cdnrefresh_items_total", '{result="succeeded"}')] == 6
    assert samples[("cdnrefresh_tasks", '{state="done"}')] == 3
    assert samples[("cdnrefresh_nodes", '{state="online"}')] == 1
    assert samples[("cdnrefresh_task_duration_seconds_count", "")] == 3
    assert samples[("cdnrefresh_api_responses_total", '{class="4xx"}')] == 1
    # saved each second with the progress: never much older than that on an idle store
    assert 0 <= stats["fabric"]["watermarks_age_ms"] < 5000
    assert 0 <= samples[("cdnrefresh_watermarks_age_seconds", "")] < 5

    agent.stop()
    wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline")
    engine.purge([SITE + "/x.css", SITE + "/y.css"])
    stats = wait_until(lambda: (lambda s: s if s["fabric"]["queue_fast"] == 2 else None)(
        engine.request("GET", "/v1/stats")[2]))
    assert stats["fabric"]["nodes_offline"] == 1
    assert stats["fabric"]["top_queues"] == [{"node": "edge-1", "depth": 2}]
    assert metrics(engine)["cdnrefresh_queue_items"]["samples"][("cdnrefresh_queue_items", '{lane="fast"}')] == 2


def test_the_agent_serves_its_own_metrics(lab):
    origin = lab.origin({"/a.css": b"a"})
    cache = lab.cache("varnish", "edge1", origin)
    engine = lab.engine()
    port = free_port()
    agent = lab.agent(engine, "edge-1", cache, extra_args=("--metrics-listen", f"127.0.0.1:{port}"))
    engine.wait_online("edge-1")
    assert engine.wait_task(engine.purge([SITE + "/a.css", SITE + "/b.css"])[2]["task_id"])["status"] == "done"
    task = engine.request("POST", "/v1/purge", {"prefixes": [SITE + "/"], "mode": "invalidate"})[2]
    assert engine.wait_task(task["task_id"])["status"] == "failed"  # Varnish cannot: unsupported

    samples = {k: v for f in scrape(port).values() for k, v in f["samples"].items()}
    assert samples[("cdnrefresh_agent_items_total", '{cache="varnish",result="succeeded"}')] == 2
    assert samples[("cdnrefresh_agent_items_total", '{cache="varnish",result="unsupported"}')] == 1
    assert samples[("cdnrefresh_agent_items_total", '{cache="varnish",result="failed"}')] == 0
    assert samples[("cdnrefresh_agent_cache_request_duration_seconds_count", "")] == 2
    assert samples[("cdnrefresh_agent_link_up", "")] == 1
    assert samples[("cdnrefresh_agent_link_connects_total", "")] == 1
    assert samples[("cdnrefresh_agent_items_in_progress", "")] == 0

    other = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    other.request("POST", "/metrics", body=b"")
    response = other.getresponse()
    assert response.status == 405 and response.getheader("Allow") == "GET"
    response.read()
    # A scraper holding its keep-alive connection open does not keep the agent from stopping.
    started = time.monotonic()
    assert agent.stop() == 0
    assert time.monotonic() - started < 5
    other.close()


def test_debug_vars_show_the_internals(lab):
    origin = lab.origin({"/a.css": b"a"})
    edge = lab.edge("edge1", origin)
    engine = lab.engine("--threads", "2")
    lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    idle = [http.client.HTTPConnection("127.0.0.1", engine.port, timeout=10) for _ in range(3)]
    for conn in idle:
        conn.connect()
    def open_connections():  # the asking connection included
        return sum(loop["connections"] for loop in engine.request("GET", "/debug/vars")[2]["api_loops"])
    wait_until(lambda: open_connections() == 4, what="3 idle connections and ours counted")
    status, _, body = engine.request("GET", "/debug/vars")
    assert status == 200
    assert len(body["api_loops"]) == 2
    assert all(loop["store_jobs_in_flight"] >= 0 for loop in body["api_loops"])
    internals = body["stats"]["fabric"]["internals"]
    assert internals["links"] == 1 and internals["link_buffer_bytes"] > 0
    assert internals["timers_armed"] >= 1 and internals["timer_wheel_slots"] > 0  # link heartbeats
    assert set(body["store_queues"]) == {"writer", "reader"}
    for conn in idle:
        conn.close()
    wait_until(lambda: open_connections() == 1, what="closed connections no longer counted")
