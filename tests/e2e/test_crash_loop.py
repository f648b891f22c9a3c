"""The crash loop: under steady submissions, kill -9 the engine at random moments (50 times by
default; CDR_CRASH_KILLS=1000 for a long run) and now and then an agent, with one cache behind a
proxy that drops connections and answers 503 at random. At the end every task that got a 202
exists, reaches a final state, and every (item, node) result is recorded exactly once."""
import http.client
import json
import os
import random
import sys
import threading
import time

from conftest import wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from lab import FaultProxy  # noqa: E402

KILLS = int(os.environ.get("CDR_CRASH_KILLS", "50"))
URLS_PER_TASK = 5
SITE = "http://crash.example"


class Submitter(threading.Thread):
    """Posts purges as fast as the engine takes them; remembers every task that got a 202."""

    def __init__(self, engine):
        super().__init__(daemon=True)
        self.engine = engine
        self.stopping = threading.Event()
        self.accepted = []
        self.lock = threading.Lock()

    def run(self):
        n = 0
        while not self.stopping.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.engine.port, timeout=5)
                while not self.stopping.is_set():
                    n += 1
                    urls = [f"{SITE}/{n}/{i}.css" for i in range(URLS_PER_TASK)]
                    conn.request("POST", "/v1/purge", body=json.dumps({"urls": urls}),
                                 headers={"Content-Type": "application/json"})
                    response = conn.getresponse()
                    data = response.read()
                    if response.status == 202:
                        with self.lock:
                            self.accepted.append(json.loads(data)["task_id"])
                    time.sleep(0.005)
            except (OSError, http.client.HTTPException):
                time.sleep(0.02)  # the engine is down; it comes back


def test_crash_loop(lab):
    rng = random.Random(1234)
    origin = lab.origin({"/x.css": b"x"})
    edge = lab.edge("edge1", origin)
    proxy = lab.add(FaultProxy(edge, fail_ratio=0.1, drop_ratio=0.05, port=edge.purge_port).start())
    engine = lab.engine("--max-attempts", "50", "--retry-base-ms", "20", "--retry-max-ms", "200",
                        "--synchronous", "normal")
    agents = [lab.agent(engine, "edge-direct", edge), lab.agent(engine, "edge-flaky", None,
                                                                 extra_args=("--nginx-purge-url", proxy.url))]
    engine.wait_online("edge-direct", "edge-flaky")
    submitter = Submitter(engine)
    submitter.start()
    try:
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.05, 0.3))
            engine.kill9()
            if kill % 10 == 5:
                victim = rng.randrange(len(agents))
                agents[victim].kill9()
                agents[victim] = lab.agent(engine, agents[victim].node_id, edge if victim == 0 else None,
                                           extra_args=() if victim == 0 else ("--nginx-purge-url", proxy.url))
            engine.start()
    finally:
        submitter.stopping.set()
        submitter.join(timeout=10)
    with submitter.lock:
        accepted = list(submitter.accepted)
    assert len(accepted) > KILLS, "the submitter got too few tasks in between the kills"
    engine.wait_online("edge-direct", "edge-flaky", timeout=20)

    def unfinished():
        return [t for t in (engine.task(i) for i in accepted) if t["status"] not in ("done", "partial", "failed")]
    try:
        wait_until(lambda: not unfinished(), timeout=60, interval=0.5, what="every task to finish")
    except TimeoutError:
        stuck = unfinished()
        detail = [(t["task_id"], t["status"], t["counters"],
                   engine.request("GET", f"/v1/tasks/{t['task_id']}/items")[2]) for t in stuck[:3]]
        engine_lines = [line for line in engine.read_log().splitlines() if "flaky" in line][-15:]
        agent_lines = agents[1].read_log().splitlines()[-15:]
        raise AssertionError(f"{len(stuck)} of {len(accepted)} tasks never finished: {detail[:1]} "
                             f"nodes {engine.nodes()}\nENGINE\n" + "\n".join(engine_lines) +
                             "\nAGENT\n" + "\n".join(agent_lines))
    for task_id in accepted:
        task = engine.wait_task(task_id, timeout=60)
        counters = task["counters"]
        assert task["status"] == "done", task
        # edge-direct checks its cache directory (verified); edge-flaky purges through the
        # purge server, which cannot tell
        assert counters == {"total": 2 * URLS_PER_TASK, "succeeded": 2 * URLS_PER_TASK, "failed": 0,
                            "pending": 0, "unsupported": 0, "verified": URLS_PER_TASK}, task
    # exactly once, item by item, on a sample of tasks
    for task_id in rng.sample(accepted, min(40, len(accepted))):
        items = engine.request("GET", f"/v1/tasks/{task_id}/items")[2]["items"]
        assert len(items) == URLS_PER_TASK
        for item in items:
            assert sorted((n["node"], n["state"]) for n in item["nodes"]) == [
                ("edge-direct", "succeeded"), ("edge-flaky", "succeeded")]
    assert proxy.counts["failed"] > 0 and proxy.counts["dropped"] > 0
