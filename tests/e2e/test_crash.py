"""kill -9 the engine while tasks are being submitted: every task answered 202 survives."""
import threading

import pytest

from conftest import Engine

ROUNDS = 3
SENDERS = 4


def submit_until_stopped(engine, stop, acknowledged, lock, sender):
    import http.client
    import json
    i = 0
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=5)
            while not stop.is_set():
                body = json.dumps({"urls": [f"https://crash.example/{sender}/{i}"]})
                conn.request("POST", "/v1/purge", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                if response.status == 202:
                    with lock:
                        acknowledged.append(json.loads(data)["task_id"])
                i += 1
        except (OSError, http.client.HTTPException):
            return  # the engine died under us: what it acknowledged so far is what counts


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_acknowledged_tasks_survive_kill9(data_dir, synchronous):
    engine = Engine(data_dir, ["--synchronous", synchronous])
    acknowledged = []
    lock = threading.Lock()
    try:
        for _ in range(ROUNDS):
            engine.start()
            stop = threading.Event()
            senders = [threading.Thread(target=submit_until_stopped, args=(engine, stop, acknowledged, lock, f"{len(acknowledged)}-{s}"))
                       for s in range(SENDERS)]
            for t in senders:
                t.start()
            before = len(acknowledged)
            while len(acknowledged) < before + 200:
                threading.Event().wait(0.01)
            engine.kill9()  # while the senders are still mid-request
            stop.set()
            for t in senders:
                t.join(timeout=10)
        engine.start()
        with lock:
            ids = list(acknowledged)
        assert len(ids) >= ROUNDS * 200
        for task_id in ids:
            status, _, task = engine.request("GET", f"/v1/tasks/{task_id}")
            assert status == 200, f"acknowledged task {task_id} lost"
            assert task["status"] == "failed"  # no edge node is registered in this test
        seen = set()
        cursor = None
        while True:
            path = "/v1/tasks?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            _, _, page = engine.request("GET", path)
            seen.update(t["task_id"] for t in page["tasks"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert set(ids) <= seen
    finally:
        assert engine.stop() == 0
