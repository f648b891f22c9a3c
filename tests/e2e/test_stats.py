"""GET /v1/stats and GET /metrics against a working engine; /metrics is checked by a strict parser
of the Prometheus text format (HELP and TYPE before samples, cumulative histogram buckets)."""
import http.client
import re

from conftest import wait_until

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
    conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=10)
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

    agent.stop()
    wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline")
    engine.purge([SITE + "/x.css", SITE + "/y.css"])
    stats = wait_until(lambda: (lambda s: s if s["fabric"]["queue_fast"] == 2 else None)(
        engine.request("GET", "/v1/stats")[2]))
    assert stats["fabric"]["nodes_offline"] == 1
    assert stats["fabric"]["top_queues"] == [{"node": "edge-1", "depth": 2}]
    assert metrics(engine)["cdnrefresh_queue_items"]["samples"][("cdnrefresh_queue_items", '{lane="fast"}')] == 2
