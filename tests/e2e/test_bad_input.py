"""Every kind of bad input answers 4xx with {"error":{code,message,field}} and stores nothing."""
import json
import socket

import pytest

LIMITS = ("--max-items", "3", "--max-url-length", "64", "--max-body-bytes", "2048", "--max-deadline", "600", "--default-deadline", "300")

CASES = [
    # (path, raw body, status, code, field)
    ("/v1/purge", '{"urls": [', 400, "malformed_json", None),
    ("/v1/purge", "", 400, "malformed_json", None),
    ("/v1/purge", '{"urls":["https://a.com/"],"urls":[]}', 400, "malformed_json", None),
    ("/v1/purge", '["https://a.com/"]', 400, "invalid_type", None),
    ("/v1/purge", '{"urls":"https://a.com/"}', 400, "invalid_type", "urls"),
    ("/v1/purge", '{"urls":["https://a.com/", 5]}', 400, "invalid_type", "urls[1]"),
    ("/v1/purge", '{"urls":["https://a.com/"],"mode":1}', 400, "invalid_value", "mode"),
    ("/v1/purge", '{"urls":["https://a.com/"],"deadline_s":"60"}', 400, "invalid_value", "deadline_s"),
    ("/v1/purge", '{"url":["https://a.com/"]}', 400, "unknown_field", "url"),
    ("/v1/preload", '{"urls":["https://a.com/"],"tags":["x"]}', 400, "unknown_field", "tags"),
    ("/v1/purge", '{"urls":["https://a.com/"],"nodes":{"grups":["eu"]}}', 400, "unknown_field", "nodes"),
    ("/v1/purge", "{}", 400, "empty_targets", "urls"),
    ("/v1/purge", '{"urls":[],"prefixes":[]}', 400, "empty_targets", "urls"),
    ("/v1/preload", '{"urls":[]}', 400, "empty_targets", "urls"),
    ("/v1/purge", '{"urls":["https://a.com/","example.com/x"]}', 400, "invalid_url", "urls[1]"),
    ("/v1/purge", '{"urls":["ftp://a.com/x"]}', 400, "invalid_url", "urls[0]"),
    ("/v1/purge", '{"urls":["https://a.com/x#top"]}', 400, "invalid_url", "urls[0]"),
    ("/v1/purge", '{"urls":["https://a.com/' + "x" * 60 + '"]}', 400, "url_too_long", "urls[0]"),
    ("/v1/purge", '{"urls":["https://a.com/1","https://a.com/2"],"prefixes":["https://a.com/p/","https://a.com/q/"]}',
     400, "too_many_items", "prefixes"),
    ("/v1/purge", '{"prefixes":["https://a.com"]}', 400, "invalid_prefix", "prefixes[0]"),
    ("/v1/purge", '{"regexes":["^https://a\\\\.com/(img"]}', 400, "invalid_regex", "regexes[0]"),
    ("/v1/purge", '{"tags":["two words"]}', 400, "invalid_tag", "tags[0]"),
    ("/v1/purge", '{"urls":["https://a.com/"],"mode":"soft"}', 400, "invalid_value", "mode"),
    ("/v1/purge", '{"urls":["https://a.com/"],"deadline_s":601}', 400, "invalid_value", "deadline_s"),
    ("/v1/purge", '{"urls":["https://a.com/"],"callback":"not a url"}', 400, "invalid_url", "callback"),
    ("/v1/preload", '{"urls":["https://a.com/"],"headers":{"Host":"b.com"}}', 400, "invalid_value", "headers.Host"),
]


@pytest.fixture
def limited(make_engine):
    return make_engine(*LIMITS)


def assert_nothing_stored(engine):
    status, _, page = engine.request("GET", "/v1/tasks")
    assert status == 200 and page["tasks"] == []


@pytest.mark.parametrize("path,raw,status,code,field", CASES, ids=[f"{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_bad_body_is_refused_with_named_field(limited, path, raw, status, code, field):
    got_status, headers, body = limited.request("POST", path, raw=raw)
    assert got_status == status
    assert headers["content-type"] == "application/json"
    error = body["error"]
    assert error["code"] == code
    assert error["message"]
    assert error.get("field") == field
    assert_nothing_stored(limited)


def body_of(code):
    return next(raw for _, raw, _, case_code, _ in CASES if case_code == code)


@pytest.mark.parametrize("code,named", [("too_many_items", "limits.max_items_per_request"),
                                        ("url_too_long", "limits.max_url_length"),
                                        ("invalid_regex", "PCRE2")])
def test_limits_are_named_in_messages(limited, code, named):
    _, _, body = limited.request("POST", "/v1/purge", raw=body_of(code))
    assert named in body["error"]["message"]


def test_body_over_limit_is_413_json(limited):
    raw = json.dumps({"urls": ["https://a.com/x"], "callback": "https://a.com/" + "c" * 3000})
    status, _, body = limited.request("POST", "/v1/purge", raw=raw)
    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    assert "limits.max_body_bytes" in body["error"]["message"]
    assert_nothing_stored(limited)


def test_body_far_over_limit_is_cut_off_with_413(limited):
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as s:
        s.sendall(b"POST /v1/purge HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        answer = s.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413")
    assert_nothing_stored(limited)


@pytest.mark.parametrize("task_id", ["01M87BCTXNBXVP8BSWWYX7577R", "nonsense", "01m87bctxnbxvp8bswwyx7577r"])
def test_unknown_task_is_404(engine, task_id):
    for method, path in (("GET", f"/v1/tasks/{task_id}"), ("DELETE", f"/v1/tasks/{task_id}"),
                         ("GET", f"/v1/tasks/{task_id}/items")):
        status, _, body = engine.request(method, path)
        assert status == 404
        assert body["error"]["code"] == "task_not_found"


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/v1/purge", "POST"), ("PUT", "/v1/preload", "POST"), ("POST", "/v1/tasks", "GET"),
    ("DELETE", "/v1/nodes", "GET"), ("POST", "/v1/tasks/01M87BCTXNBXVP8BSWWYX7577R", "GET, DELETE"),
    ("DELETE", "/v1/tasks/01M87BCTXNBXVP8BSWWYX7577R/items", "GET"), ("POST", "/healthz", "GET"),
])
def test_wrong_method_is_405_with_allow(engine, method, path, allowed):
    status, headers, body = engine.request(method, path, raw="{}" if method in ("POST", "PUT") else None)
    assert status == 405
    assert headers["allow"] == allowed
    assert body["error"]["code"] == "method_not_allowed"
    assert_nothing_stored(engine)


def test_unknown_path_is_404(engine):
    for path in ("/v2/purge", "/v1/tasks/01M87BCTXNBXVP8BSWWYX7577R/other", "/status"):
        status, _, body = engine.request("GET", path)
        assert status == 404
        assert body["error"]["code"] == "not_found"


@pytest.mark.parametrize("query,field", [
    ("state=sleeping", "state"), ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"),
    ("cursor=abc", "cursor"), ("colour=red", "colour"), ("state=queued&state=done", "state"),
])
def test_bad_query_is_400_naming_the_parameter(engine, query, field):
    status, _, body = engine.request("GET", f"/v1/tasks?{query}")
    assert status == 400
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["field"] == field


def test_bad_items_query_is_400(engine):
    _, _, task = engine.purge(["https://a.com/"])
    for query, field in (("state=queued", "state"), ("cursor=-1", "cursor"), ("limit=5000", "limit")):
        status, _, body = engine.request("GET", f"/v1/tasks/{task['task_id']}/items?{query}")
        assert status == 400 and body["error"]["field"] == field
