"""Task callbacks: signed, retried until delivered, recorded, and never sent to internal
addresses unless allowed."""
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest

from conftest import wait_until

SECRET = "test-secret"
SITE = "http://www.example.com"


class Receiver:
    """A callback receiver on 127.0.0.1 that answers 503 to the first `failures` calls."""

    def __init__(self, failures=0):
        self.failures = failures
        self.calls = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body, time.time()))
                status = 503 if len(receiver.calls) <= receiver.failures else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(failures=0):
        made.append(Receiver(failures))
        return made[-1]
    yield make
    for r in made:
        r.stop()


def verify(headers, body):
    fields = dict(part.split("=", 1) for part in headers["X-Cdnrefresh-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert abs(int(fields["t"]) - time.time()) < 60


def engine_args():
    return ("--callback-secret", SECRET, "--callback-allow", "127.0.0.1", "--callback-retry-base-ms", "50")


def test_callback_is_retried_until_delivered_and_verifies(lab, receiver):
    hook = receiver(failures=2)
    origin = lab.origin({"/a.css": b"a"})
    edge = lab.edge("edge1", origin)
    engine = lab.engine(*engine_args())
    lab.agent(engine, "edge-1", edge)
    engine.wait_online("edge-1")
    _, _, body = engine.purge([SITE + "/a.css"], callback=hook.url)
    task_id = body["task_id"]
    wait_until(lambda: engine.task(task_id)["callback_delivery"]["state"] == "delivered", timeout=20,
               what="callback delivered")
    assert len(hook.calls) == 3
    for headers, raw, _ in hook.calls:
        verify(headers, raw)
        assert headers["X-Cdnrefresh-Task"] == task_id
    sent = json.loads(hook.calls[-1][1])
    assert sent["task_id"] == task_id and sent["status"] == "done"
    assert sent["counters"]["succeeded"] == 1
    attempts = engine.task(task_id)["callback_delivery"]["attempts"]
    assert [(a["attempt"], a["http_status"], a["error"]) for a in attempts] == [
        (1, 503, "http_503"), (2, 503, "http_503"), (3, 200, None)]
    assert hook.calls[1][2] > hook.calls[0][2]  # retried later, not at once


def test_callback_of_a_failed_task_without_nodes(lab, receiver):
    hook = receiver()
    engine = lab.engine(*engine_args())
    _, _, body = engine.purge([SITE + "/a.css"], callback=hook.url)
    wait_until(lambda: len(hook.calls) == 1, what="callback")
    assert json.loads(hook.calls[0][1])["status"] == "failed"


def test_callback_gives_up_after_its_window(lab, receiver):
    hook = receiver(failures=1000)
    engine = lab.engine(*engine_args(), "--callback-window", "1")
    _, _, body = engine.purge([SITE + "/a.css"], callback=hook.url)
    wait_until(lambda: engine.task(body["task_id"])["callback_delivery"]["state"] == "failed", timeout=10)
    assert len(hook.calls) >= 2


def test_internal_callback_addresses_are_refused(lab, receiver):
    engine = lab.engine(*engine_args())
    for url in ("http://10.1.2.3/hook", "http://192.168.0.9/hook", "http://[::1]:9/hook",
                "http://169.254.169.254/latest/meta-data"):
        status, _, body = engine.purge([SITE + "/a.css"], callback=url)
        assert status == 400 and body["error"]["field"] == "callback", url
    hook = receiver()
    strict = lab.engine("--callback-secret", SECRET, name="strict")  # 127.0.0.1 not allowed here
    status, _, body = strict.purge([SITE + "/a.css"], callback=hook.url)
    assert status == 400 and "callbacks.allow_internal" in body["error"]["message"]


def test_names_resolving_to_internal_addresses_are_refused_at_connect(lab, receiver):
    hook = receiver()
    engine = lab.engine("--callback-secret", SECRET, "--callback-window", "1")
    port = hook.url.split(":")[2].split("/")[0]
    _, _, body = engine.purge([SITE + "/a.css"], callback=f"http://localhost:{port}/hook")
    wait_until(lambda: engine.task(body["task_id"])["callback_delivery"]["state"] == "failed", timeout=10)
    attempts = engine.task(body["task_id"])["callback_delivery"]["attempts"]
    assert attempts[0]["error"].startswith("refused")
    assert hook.calls == []


def test_pending_callback_is_delivered_after_a_restart(lab, receiver):
    hook = receiver(failures=1000)
    engine = lab.engine(*engine_args(), "--callback-retry-base-ms", "60000")
    _, _, body = engine.purge([SITE + "/a.css"], callback=hook.url)
    wait_until(lambda: len(hook.calls) == 1, what="first attempt")
    engine.kill9()
    hook.failures = 0
    engine.start()
    wait_until(lambda: engine.task(body["task_id"])["callback_delivery"]["state"] == "delivered", timeout=10)
    assert len(hook.calls) == 2


def test_callbacks_ignore_the_proxy_environment(lab, receiver, monkeypatch):
    """The internal-address guard checks the socket the engine opens: through an http_proxy it
    would check the proxy, so callbacks never take one."""
    from lab import FaultProxy
    hook = receiver()
    receiver_port = int(hook.url.split(":")[2].split("/")[0])
    proxy = lab.add(FaultProxy(None, port=receiver_port).start())
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    engine = lab.engine(*engine_args())
    _, _, body = engine.purge([SITE + "/a.css"], callback=hook.url)
    wait_until(lambda: len(hook.calls) == 1, what="callback")
    assert proxy.counts["received"] == 0

