"""Attacks on the agent port that must never keep a real agent out: guessing the shared token
(before and after an engine restart) and idle connections that hold the places of connections
waiting for their Welcome. A real agent holding the right token is welcomed through both."""
import collections
import selectors
import socket
import struct
import threading
import time

import pytest

from conftest import wait_until
from lab import raise_open_files

HELLO, WELCOME, REFUSAL = 1, 2, 3


def varint(value):
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def hello_frame(node_id, token):
    """A Hello as an agent sends it (link.proto: node_id 1, token 2, protocol_version 3,
    cache_kind 5, window 7), in its frame (length, type, flags, version 1)."""
    def text(field, value):
        return varint(field << 3 | 2) + varint(len(value)) + value.encode()
    payload = (text(1, node_id) + text(2, token) + varint(3 << 3) + varint(1) + text(5, "nginx")
               + varint(7 << 3) + varint(16))
    return struct.pack(">IBBH", len(payload), HELLO, 0, 1) + payload


def answer(sock, within_s):
    """(frame type, the Refusal's code or "") of the engine's first frame on sock, or ("closed", "")
    when it closed the connection without one, or ("none", "") after within_s."""
    sock.settimeout(within_s)
    data = b""
    try:
        while len(data) < 8 or len(data) < 8 + struct.unpack(">I", data[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed", ""
            data += chunk
    except ConnectionResetError:
        return "closed", ""
    except socket.timeout:
        return "none", ""
    kind, payload = data[4], data[8:8 + struct.unpack(">I", data[:4])[0]]
    code = ""
    if kind == REFUSAL and payload[:1] == b"\x0a":  # field 1 (code), a short string
        code = payload[2:2 + payload[1]].decode()
    return {WELCOME: "welcome", REFUSAL: "refusal"}.get(kind, kind), code


def connect(engine, source="127.0.0.1"):
    host, port = engine.agent_address.split(":")
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    return sock


def guess(engine, count, source):
    """count Hellos with wrong tokens under made-up node ids from source, sent at once; returns
    [(seconds until the answer, frame, code)] for each, in the order sent."""
    socks = [connect(engine, source) for _ in range(count)]
    started = time.monotonic()
    for i, sock in enumerate(socks):
        try:
            sock.sendall(hello_frame(f"ghost-{i}", f"guess-{i}"))
        except OSError:
            pass  # closed by the engine to make room for newer connections
    answers = []
    for sock in socks:
        frame, code = answer(sock, within_s=15)
        answers.append((time.monotonic() - started, frame, code))
        sock.close()
    return answers


@pytest.mark.parametrize("guesses,source", [(100, "127.0.0.1"), (400, "127.0.0.7")])
def test_guessing_after_a_restart_never_locks_out_the_right_token(lab, guesses, source):
    engine = lab.engine("--agent-token", "s3cret")
    agents = [lab.agent(engine, node_id, None, token="s3cret") for node_id in ("edge-1", "edge-2")]
    engine.wait_online("edge-1", "edge-2")
    engine.stop()  # a deploy or a crash: whatever the engine knew of its agents' addresses is gone
    engine.start()
    answers = guess(engine, guesses, source)
    # The agents that hold the token come back, from their usual address; a node never seen
    # before is welcomed too, also from the guesser's own address, even with a guessed node id.
    engine.wait_online("edge-1", "edge-2")
    lab.agent(engine, "edge-new", None, token="s3cret")
    engine.wait_online("edge-new")
    with connect(engine, source) as sock:
        sock.sendall(hello_frame("ghost-3", "s3cret"))
        assert answer(sock, within_s=5)[0] == "welcome"
    assert all(agent.running() for agent in agents)
    # Every guess is checked and refused for what it is; past agents.auth_failures_max (10) from one
    # address the refusal comes only after a pause. With more guesses than one address may keep
    # waiting (256), the oldest are closed unanswered to make room.
    assert {frame for _, frame, _ in answers} <= {"refusal", "closed"}
    assert {code for _, frame, code in answers if frame == "refusal"} == {"wrong_token"}
    assert sum(frame == "refusal" for _, frame, _ in answers) >= min(guesses, 256) - 10
    assert sum(seconds < 0.9 for seconds, frame, _ in answers if frame == "refusal") <= 10
    log = engine.read_log()
    assert log.count('"event":"agent.blocked"') == 1  # once for the address, not per Hello
    assert log.count('"event":"agent.guessing"') == (guesses > 100)  # agents.auth_guesses_max


def test_wrong_tokens_past_the_limit_are_answered_after_a_pause(lab):
    engine = lab.engine("--agent-token", "s3cret", "--auth-failures-max", "3",
                        "--auth-guesses-max", "6", "--auth-window", "600")

    def hello(node_id, token, source="127.0.0.1"):
        with connect(engine, source) as sock:
            started = time.monotonic()
            sock.sendall(hello_frame(node_id, token))
            frame, code = answer(sock, within_s=10)
            return code or frame, time.monotonic() - started

    # Three wrong tokens for edge-1 from one address are refused at once, the fourth after a pause;
    # the right token from that very address, for that very node id, is welcomed at once.
    assert [hello("edge-1", "guess")[0] for _ in range(3)] == ["wrong_token"] * 3
    code, seconds = hello("edge-1", "guess")
    assert code == "wrong_token" and seconds >= 0.9
    assert hello("edge-1", "s3cret")[0] == "welcome"
    # The same node id from another address is slowed (its count is per node id too)...
    code, seconds = hello("edge-1", "guess", source="127.0.0.2")
    assert code == "wrong_token" and seconds >= 0.9
    # ...another one on a fresh address is not, until all peers together pass auth_guesses_max.
    assert hello("edge-2", "guess", source="127.0.0.3") == ("wrong_token", pytest.approx(0, abs=0.9))
    code, seconds = hello("edge-3", "guess", source="127.0.0.4")
    assert code == "wrong_token" and seconds >= 0.9
    assert hello("edge-3", "s3cret", source="127.0.0.4")[0] == "welcome"
    # A real agent refused for a wrong token stops (retrying cannot fix its configuration).
    bad = lab.agent(engine, "edge-5", None, token="guess")
    wait_until(lambda: not bad.running(), what="agent with a wrong token to exit")
    bad.expected_exit = 1
    assert "wrong_token" in bad.read_log() and "fix the agent's configuration" in bad.read_log()


class IdleFlood:
    """Keeps per_source connections that send nothing open to the agent port from each source
    address, opening a new one whenever the engine closes one, until stopped."""

    def __init__(self, engine, sources, per_source):
        self.engine, self.sources, self.per_source = engine, sources, per_source
        self.stopping = threading.Event()
        self.opened = 0     # connections opened in all
        self.most_open = 0  # the most open at once
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        raise_open_files()  # 4 x 256 sockets and more
        self.thread.start()
        try:
            wait_until(lambda: self.most_open == len(self.sources) * self.per_source,
                       what="flood open")
        except BaseException:
            self.__exit__()  # no flood left behind to aim at the next test's engine
            raise
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def run(self):
        poller = selectors.DefaultSelector()  # epoll: more descriptors than select() takes
        open_from = collections.Counter()
        try:
            while not self.stopping.is_set():
                for source in self.sources:
                    while open_from[source] < self.per_source:
                        try:
                            sock = connect(self.engine, source)
                        except OSError:
                            break
                        poller.register(sock, selectors.EVENT_READ, source)
                        open_from[source] += 1
                        self.opened += 1
                self.most_open = max(self.most_open, sum(open_from.values()))
                for key, _ in poller.select(0.05):  # closed by the engine: open another at once
                    poller.unregister(key.fileobj)
                    key.fileobj.close()
                    open_from[key.data] -= 1
        finally:
            for key in list(poller.get_map().values()):
                key.fileobj.close()
            poller.close()


@pytest.mark.parametrize("sources,per_source,flags", [
    (["127.0.0.1"], 256, ()),                                   # the agents' own address
    ([f"127.0.0.{i}" for i in range(2, 6)], 256, ()),           # every place, from four others
    ([f"127.0.0.{i}" for i in range(2, 4)], 20,                 # the overall cap, small
     ("--agent-pending-max", "40", "--agent-pending-per-address", "20")),
])
def test_idle_connections_cannot_keep_agents_out(lab, sources, per_source, flags):
    engine = lab.engine("--agent-token", "s3cret", *flags)
    with IdleFlood(engine, sources, per_source):
        agent = lab.agent(engine, "edge-1", None, token="s3cret")
        engine.wait_online("edge-1")
        # The places stay taken all along: a real agent gets in past them, again and again.
        agent.stop()
        lab.agent(engine, "edge-2", None, token="s3cret")
        engine.wait_online("edge-2")
        # An idle connection holds its place only until the Hello timeout (2 s): the engine then
        # closes it, and the flood opens another.
        wait_until(lambda: "no Hello in time" in engine.read_log(), timeout=10,
                   what="idle connections closed at the Hello timeout")
