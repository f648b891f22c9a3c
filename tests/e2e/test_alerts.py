"""The alert webhook: node offline and back, backlog, callback given up; signed; deduplicated."""
import hashlib
import hmac
import json
import time

from conftest import wait_until
from test_callbacks import Receiver

SECRET = "alert-secret"


def alerts_of(receiver):
    return [json.loads(body) for _, body, _ in receiver.calls]


def start(lab, receiver, *extra):
    return lab.engine("--callback-secret", SECRET, "--alert-url", receiver.url, "--callback-allow",
                      "127.0.0.1", *extra)


def test_node_offline_and_back_are_alerted_once_per_window(lab):
    hook = Receiver()
    try:
        engine = start(lab, hook, "--alert-window", "300")
        agent = lab.agent(engine, "edge-1", None)
        engine.wait_online("edge-1")
        agent.stop()
        wait_until(lambda: any(a["alert"] == "node_offline" for a in alerts_of(hook)), what="offline alert")
        headers, body, _ = hook.calls[0]
        fields = dict(p.split("=", 1) for p in headers["X-Cdnrefresh-Signature"].split(","))
        assert fields["v1"] == hmac.new(SECRET.encode(), fields["t"].encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        alert = alerts_of(hook)[0]
        assert alert["subject"] == "edge-1" and alert["repeats"] == 0 and "edge-1" in alert["message"]
        for _ in range(3):  # flapping
            agent = lab.agent(engine, "edge-1", None)
            engine.wait_online("edge-1")
            agent.stop()
            wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline")
        time.sleep(0.5)
        kinds = [a["alert"] for a in alerts_of(hook)]
        assert kinds.count("node_offline") == 1 and kinds.count("node_back") == 1  # one per window
    finally:
        hook.stop()


def test_backlog_and_failed_callback_are_alerted(lab):
    hook = Receiver()
    try:
        engine = start(lab, hook, "--alert-backlog-items", "2", "--alert-backlog-s", "1",
                       "--callback-window", "1", "--callback-retry-base-ms", "50")
        agent = lab.agent(engine, "edge-1", None)
        engine.wait_online("edge-1")
        agent.stop()
        engine.purge([f"http://a.example/{i}" for i in range(5)],
                     callback="http://127.0.0.1:9/never")  # nothing listens there
        wait_until(lambda: any(a["alert"] == "backlog" for a in alerts_of(hook)), timeout=10,
                   what="backlog alert")
        backlog = next(a for a in alerts_of(hook) if a["alert"] == "backlog")
        assert backlog["subject"] == "edge-1" and "5 items" in backlog["message"]
        _, _, body = engine.request("DELETE", "/v1/tasks/" + engine.request("GET", "/v1/tasks")[2]["tasks"][0]["task_id"])
        wait_until(lambda: any(a["alert"] == "callback_failed" for a in alerts_of(hook)), timeout=10,
                   what="callback alert")
    finally:
        hook.stop()


def test_repeats_counted_in_a_window_go_out_when_it_ends(lab):
    hook = Receiver()
    try:
        engine = start(lab, hook, "--alert-window", "2")
        for _ in range(4):  # one alert, then three repeats inside the window (or a few windows)
            agent = lab.agent(engine, "edge-1", None)
            engine.wait_online("edge-1")
            agent.stop()
            wait_until(lambda: engine.nodes()["edge-1"]["state"] == "offline")

        def offline_events_reported():  # a summary reports repeats only; other alerts are events
            return sum(a["repeats"] + (not a["summary"]) for a in alerts_of(hook) if a["alert"] == "node_offline")
        # Nothing more happens: the counted repeats must still arrive once their window ends.
        wait_until(lambda: offline_events_reported() == 4, timeout=10, what="every offline reported")
        offline = [a for a in alerts_of(hook) if a["alert"] == "node_offline"]
        assert offline[0]["repeats"] == 0 and not offline[0]["summary"]
        assert offline[-1]["summary"] and offline[-1]["repeats"] >= 1
        assert all("edge-1" in a["message"] for a in offline)
        time.sleep(2.5)
        assert offline_events_reported() == 4  # nothing reported twice
    finally:
        hook.stop()
