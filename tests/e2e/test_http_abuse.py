"""Hostile HTTP clients against the running engine: slow headers and slow bodies (slowloris) are
cut after limits.request_timeout_ms and give back their connection; oversized headers and bodies
are answered 431 and 413; ten thousand idle connections do not keep a normal client from being
served."""
import resource
import socket

import pytest

from conftest import closed_by_server, wait_until

TIMEOUT_MS = 1000


def connections(engine):
    """Open API connections, the asking one included (GET /debug/vars)."""
    return sum(loop["connections"] for loop in engine.request("GET", "/debug/vars")[2]["api_loops"])


def test_slow_headers_and_slow_bodies_are_cut(make_engine):
    engine = make_engine("--request-timeout-ms", str(TIMEOUT_MS), offline_node=False)
    slow_headers = socket.create_connection(("127.0.0.1", engine.port))
    slow_headers.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    slow_body = socket.create_connection(("127.0.0.1", engine.port))
    slow_body.sendall(b"POST /v1/purge HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"urls\":")
    wait_until(lambda: connections(engine) == 3, what="both slow clients connected")
    for sock in (slow_headers, slow_body):
        sock.sendall(b" ")  # a trickle does not reset the clock: the whole request is due in time
    assert closed_by_server(slow_headers, within_s=10 * TIMEOUT_MS / 1000)
    assert closed_by_server(slow_body, within_s=10 * TIMEOUT_MS / 1000)
    wait_until(lambda: connections(engine) == 1, what="their connections released")
    assert engine.request("GET", "/v1/tasks")[2]["tasks"] == []  # the half body stored nothing


def exchange(engine, data, within_s=3):
    """Sends data on a new connection; returns everything the engine sent until it closed."""
    sock = socket.create_connection(("127.0.0.1", engine.port))
    sock.sendall(data)
    sock.settimeout(within_s)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except socket.timeout:
        answer += b"<still open>"
    except ConnectionResetError:
        pass
    sock.close()
    return answer


SMUGGLED = b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n"  # a second request hidden in a body
PURGE = b'{"urls":["https://example.com/a"]}'


@pytest.mark.parametrize("headers,body,code", [
    # Two lengths: the engine would read 0 bytes of body and then the hidden request, a proxy 37.
    (b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED), SMUGGLED, True),
    (b"Content-Length: %d\r\nContent-Length: 0\r\n" % len(SMUGGLED), SMUGGLED, True),
    # Length and chunked: which one a hop obeys decides where the next request begins.
    (b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED, True),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n", b"0\r\n\r\n" + SMUGGLED, True),
    # Whitespace before a colon: a proxy may read a length there; libh2o's parser refuses it.
    (b"Content-Length : %d\r\n" % len(SMUGGLED), SMUGGLED, False),
    (b"Transfer-Encoding\t: chunked\r\n", b"0\r\n\r\n" + SMUGGLED, False),
])
def test_ambiguous_request_framing_is_refused_and_the_connection_closed(make_engine, headers, body,
                                                                         code):
    engine = make_engine(offline_node=False)
    answer = exchange(engine, b"POST /v1/purge HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert (b'"code":"ambiguous_framing"' in answer) == code  # else libh2o's own plain 400
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # the hidden request was never answered
    assert not answer.endswith(b"<still open>")
    assert engine.request("GET", "/v1/tasks")[2]["tasks"] == []


def test_unambiguous_framing_is_served_as_before(make_engine):
    engine = make_engine(offline_node=False)
    same_twice = b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(PURGE), len(PURGE))
    answer = exchange(engine, b"POST /v1/purge HTTP/1.1\r\nHost: x\r\n" + same_twice +
                      b"Connection: close\r\n\r\n" + PURGE)
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(PURGE), PURGE)
    answer = exchange(engine, b"POST /v1/purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" + chunked)
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]


def test_oversized_headers_and_bodies_are_refused(make_engine):
    engine = make_engine("--max-header-bytes", "4096", "--max-body-bytes", "2048", offline_node=False)
    sock = socket.create_connection(("127.0.0.1", engine.port))
    sock.sendall(b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 5000 + b"\r\n\r\n")
    answer = sock.recv(4096).decode()
    sock.close()
    assert answer.startswith("HTTP/1.1 431 ") and '"code":"headers_too_large"' in answer
    big = '{"urls":["https://example.com/' + "a" * 3000 + '"]}'
    status, _, body = engine.request("POST", "/v1/purge", raw=big)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert engine.request("GET", "/v1/tasks")[2]["tasks"] == []


def test_ten_thousand_idle_connections_leave_room_for_a_client(make_engine):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 11000:
        pytest.skip(f"the open file limit ({hard}) is below 11000")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 11000), hard))
    engine = make_engine(offline_node=False)
    idle = []
    try:
        for _ in range(10000):
            idle.append(socket.create_connection(("127.0.0.1", engine.port)))
        wait_until(lambda: connections(engine) >= 10001, timeout=30, what="10,000 idle connections open")
        status, _, body = engine.request("POST", "/v1/purge", {"urls": ["https://example.com/idle.css"]})
        assert status == 202 and body["task_id"]
        assert engine.request("GET", f"/v1/tasks/{body['task_id']}")[0] == 200
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wait_until(lambda: connections(engine) == 1, timeout=30, what="idle connections released")
