"""Every purge kind of the API on every real cache the agent drives (nginx, Varnish, Squid,
Traffic Server): what a cache can do really happens to its objects, what it cannot is reported
unsupported and leaves the cache untouched, and unrelated objects stay cached."""
import os
import time

import pytest

from conftest import fetch, wait_until, warm

SITE = "http://www.example.com"
FILES = {path: path.encode() for path in [
    "/u/a.css", "/u/b.css", "/p/dir/1.png", "/p/dir/sub/2.png", "/p/dirx.png", "/p/other.png",
    "/r/x.html", "/r/y.txt", "/tagged/t.js", "/t/plain.js", "/pre/load.js", "/i/dir/1.png",
    "/i/dirx.png", "/i/x.html", "/i/y.txt"]}

# What each operation does to its targets on each cache: gone (a miss next time), stale (kept but
# revalidated with the origin on the next request) or unsupported (reported, cache untouched).
OPERATIONS = [
    # name, API fields, targeted paths, paths that must stay cached, {kind: effect}
    ("url", {"urls": [SITE + "/u/a.css"]}, ["/u/a.css"], ["/u/b.css"],
     {"nginx": "gone", "varnish": "gone", "ats": "gone", "squid": "gone"}),
    ("prefix", {"prefixes": [SITE + "/p/dir/"]}, ["/p/dir/1.png", "/p/dir/sub/2.png"],
     ["/p/dirx.png", "/p/other.png"],
     {"nginx": "gone", "varnish": "gone", "ats": "gone", "squid": "unsupported"}),
    ("regex", {"regexes": [r"^http://www\.example\.com/r/.*\.html$"]}, ["/r/x.html"], ["/r/y.txt"],
     {"nginx": "gone", "varnish": "gone", "ats": "gone", "squid": "unsupported"}),
    ("tag", {"tags": ["product-42"]}, ["/tagged/t.js"], ["/t/plain.js"],
     {"nginx": "gone", "varnish": "gone", "ats": "unsupported", "squid": "unsupported"}),
    ("url-invalidate", {"urls": [SITE + "/u/a.css"], "mode": "invalidate"}, ["/u/a.css"],
     ["/u/b.css"], {"nginx": "unsupported", "varnish": "stale", "ats": "stale", "squid": "unsupported"}),
    # (other targets than the deletes': on ATS a rule that deleted stays a delete)
    ("prefix-invalidate", {"prefixes": [SITE + "/i/dir/"], "mode": "invalidate"},
     ["/i/dir/1.png"], ["/i/dirx.png"],
     {"nginx": "unsupported", "varnish": "unsupported", "ats": "stale", "squid": "unsupported"}),
    ("regex-invalidate", {"regexes": [r"^http://www\.example\.com/i/.*\.html$"], "mode": "invalidate"},
     ["/i/x.html"], ["/i/y.txt"],
     {"nginx": "unsupported", "varnish": "unsupported", "ats": "stale", "squid": "unsupported"}),
    ("tag-invalidate", {"tags": ["product-42"], "mode": "invalidate"}, ["/tagged/t.js"],
     ["/t/plain.js"], {"nginx": "unsupported", "varnish": "stale", "ats": "unsupported",
                       "squid": "unsupported"}),
]

KINDS = ["nginx", "varnish", "ats", "squid"]


def origin_fetches(origin, path):
    """How often the origin was asked for path (its access log), conditional requests included."""
    with open(os.path.join(origin.prefix, "access.log")) as f:
        return sum(1 for line in f if f"GET {path} " in line)


def node_result(engine, task_id, node):
    [item] = engine.request("GET", f"/v1/tasks/{task_id}/items")[2]["items"]
    return next(n for n in item["nodes"] if n["node"] == node)


@pytest.fixture
def one_cache(lab, request):
    kind = request.param
    origin = lab.origin(FILES)
    cache = lab.cache(kind, f"cache-{kind}", origin)
    engine = lab.engine()
    lab.agent(engine, f"edge-{kind}", cache)
    engine.wait_online(f"edge-{kind}")
    return kind, origin, cache, engine


@pytest.mark.parametrize("one_cache", KINDS, indirect=True)
def test_every_operation_on_a_real_cache(one_cache):
    kind, origin, cache, engine = one_cache
    for name, fields, targeted, kept, effects in OPERATIONS:
        effect = effects[kind]
        for path in targeted + kept:
            warm(cache, SITE + path)
        before = {path: origin_fetches(origin, path) for path in targeted}
        # A rule-based purge (ATS) covers what was cached before it: let the clock pass the
        # second the objects were stored in, as a real purge follows the content change.
        time.sleep(1.05 if kind == "ats" else 0)
        urls = fields.get("urls") or fields.get("prefixes") or fields.get("regexes") or fields.get("tags")
        body = engine.request("POST", "/v1/purge", fields)[2]
        task = engine.wait_task(body["task_id"])
        result = node_result(engine, body["task_id"], f"edge-{kind}")
        context = f"{kind} {name} {urls}: task {task} result {result}"
        if effect == "unsupported":
            assert result["state"] == "unsupported" and result["reason"], context
            assert task["status"] == "failed", context
            expected = {path: "HIT" for path in targeted}
        else:
            assert result["state"] == "succeeded", context
            assert task["status"] == "done", context
            expected = {path: "MISS" if effect == "gone" else "STALE" for path in targeted}
        assert {path: fetch(cache, SITE + path)[1] for path in targeted} == expected, context
        for path in targeted:
            if effect == "stale":  # revalidated: the origin saw a (conditional) request for it
                wait_until(lambda: origin_fetches(origin, path) > before[path], timeout=5,
                           what=f"{context}: origin asked for {path}")
            elif effect == "unsupported":
                assert origin_fetches(origin, path) == before[path], context
        assert {path: fetch(cache, SITE + path)[1] for path in kept} == {p: "HIT" for p in kept}, context


@pytest.mark.parametrize("one_cache", KINDS, indirect=True)
def test_preload_fills_a_real_cache(one_cache):
    kind, origin, cache, engine = one_cache
    assert fetch(cache, SITE + "/u/b.css")[1] == "MISS"  # the cache works, and this is not it
    body = engine.request("POST", "/v1/preload", {"urls": [SITE + "/pre/load.js"]})[2]
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "done", task
    assert origin_fetches(origin, "/pre/load.js") == 1
    time.sleep(0.3)  # ATS and Squid finish writing an object just after answering
    assert fetch(cache, SITE + "/pre/load.js")[1] == "HIT", kind
    assert origin_fetches(origin, "/pre/load.js") == 1


def test_a_mixed_fleet_reports_per_node(lab):
    origin = lab.origin(FILES)
    engine = lab.engine()
    caches = {}
    for kind in KINDS:
        caches[kind] = lab.cache(kind, f"cache-{kind}", origin)
        lab.agent(engine, f"edge-{kind}", caches[kind])
    engine.wait_online(*(f"edge-{kind}" for kind in KINDS))
    for cache in caches.values():
        for path in ("/p/dir/1.png", "/p/other.png"):
            warm(cache, SITE + path)
    time.sleep(1.05)  # past the second the objects were stored in (ATS rules, see above)
    body = engine.request("POST", "/v1/purge", {"prefixes": [SITE + "/p/dir/"]})[2]
    task = engine.wait_task(body["task_id"])
    assert task["status"] == "partial"
    # nginx checked its cache directory; a ban and a rule are taken on the cache's word
    assert task["counters"] == {"total": 4, "succeeded": 3, "failed": 0, "pending": 0, "unsupported": 1,
                                "verified": 1}
    states = {kind: node_result(engine, body["task_id"], f"edge-{kind}")["state"] for kind in KINDS}
    assert states == {"nginx": "succeeded", "varnish": "succeeded", "ats": "succeeded",
                      "squid": "unsupported"}
    nodes = engine.nodes()
    assert {kind: (nodes[f"edge-{kind}"]["items_done"], nodes[f"edge-{kind}"]["items_failed"],
                   nodes[f"edge-{kind}"]["items_unsupported"]) for kind in KINDS} == {
        "nginx": (1, 0, 0), "varnish": (1, 0, 0), "ats": (1, 0, 0), "squid": (0, 0, 1)}
    after = {kind: fetch(cache, SITE + "/p/dir/1.png")[1] for kind, cache in caches.items()}
    assert after == {"nginx": "MISS", "varnish": "MISS", "ats": "MISS", "squid": "HIT"}
    assert all(fetch(cache, SITE + "/p/other.png")[1] == "HIT" for cache in caches.values())
