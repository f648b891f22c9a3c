"""Purges and preloads on edges set up as production edges are (scripts/lab.py): every cache also
serves HTTPS, the origin answers Vary: Accept-Encoding, URLs carry percent-encoding, "//" and
query strings, and visitors spell the Host in several ways. After each task every copy a visitor
could be served is fetched through the cache — the result is what the cache holds, never only
the task's status."""
import http.client
import ssl
import time

import pytest

from conftest import fetch, warm

HOST = "www.example.com"
# Files on the origin's disk; the URL paths below are how visitors ask for them (the origin
# decodes and merges slashes, the caches key on the raw form).
FILES = {path: (path * 40).encode() for path in [
    "/v/site.css", "/v/a b.css", "/v/double.css", "/v/q.css", "/v/a.css", "/w/1.css",
    "/w/sub/2.css", "/wx/keep.css", "/r/a b.css", "/r/plain.css", "/k/two.css", "/k/big.css",
    "/k/none.css", "/s/soft.css", "/pre/https.css", "/pre/a b.css", "/pre/no-store.css",
    "/pre/private.css"]}
URL_PATHS = ["/v/site.css", "/v/a%20b.css", "//v/double.css", "/v/q.css?x=1&y=%2F", "/v/%61.css"]
TWIN = "/v/a.css"  # what /v/%61.css decodes to: another object, which a purge of it must not touch
# Tags as origins send them: in two header lines, and in one header of more than 8 KB.
BIG_TAGS = " ".join(f"filler-{i:05d}" for i in range(800)) + " big-tag"
# (nginx takes config strings of at most 4 KB: the big header is set from pieces.)
BIG_PIECES = [BIG_TAGS[i:i + 3000] for i in range(0, len(BIG_TAGS), 3000)]
ORIGIN_EXTRA = (
    'location /pre/no-store.css { add_header Cache-Control "no-store"; }\n'
    'location /pre/private.css { add_header Cache-Control "private, max-age=600"; }\n'
    'location /k/two.css { add_header Surrogate-Key "t-one"; add_header Surrogate-Key "t-two"; }\n'
    "location /k/big.css { " + "".join(f'set $tags{i} "{p}"; ' for i, p in enumerate(BIG_PIECES))
    + 'add_header Surrogate-Key "' + "".join(f"$tags{i}" for i in range(len(BIG_PIECES))) + '"; }')
IDENTITY, GZIP = {"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip"}
KINDS = ["nginx", "varnish", "ats", "squid"]
# Host forms a visitor may send that name the URL's host: one object on every cache.
HOST_FORMS = {"http": ["WWW.Example.COM", f"{HOST}:80", f"{HOST}."], "https": [f"{HOST}:443", f"{HOST}."]}


def copies(kind):
    """The copies of one URL a visitor may be served: one per Vary variant, and on nginx (whose key
    holds the scheme) one per scheme as well. On the others, where HTTPS ends in front of the
    cache and the scheme is not part of the key, the variants are reached over both schemes."""
    if kind == "nginx":
        return [(scheme, enc) for scheme in ("http", "https") for enc in (IDENTITY, GZIP)]
    return [("http", IDENTITY), ("https", GZIP)]


def url(scheme, path):
    return f"{scheme}://{HOST}{path}"


def warm_copies(kind, cache, paths):
    for path in paths:
        for scheme, enc in copies(kind):
            warm(cache, url(scheme, path), enc)
    if kind == "ats":  # rules cover what was stored before the second they were loaded in
        time.sleep(1.05)


def first_fetch(cache, paths, copy):
    """The cache status of one copy of every path."""
    scheme, enc = copy
    return {path: fetch(cache, url(scheme, path), enc)[1] for path in paths}


def after_task(kind, cache, engine, api_path, fields, paths, kept=()):
    """Runs the task once per copy of a URL, each time on freshly cached copies, and returns what
    the first fetch of that copy then got, for paths and kept: {copy: ({path: status}, {...})}.
    (Checked one copy per round: on some caches copies share an object, and a later copy would
    see what the first fetch cached again.) The last task's id and state come along."""
    seen = {}
    for copy in copies(kind):
        warm_copies(kind, cache, list(paths) + list(kept))
        task_id, task = run(engine, api_path, fields)
        seen[(copy[0], copy[1]["Accept-Encoding"])] = (first_fetch(cache, paths, copy),
                                                       first_fetch(cache, kept, copy))
    return seen, task_id, task


def each_copy(kind, paths, kept, status, kept_status="HIT"):
    return {(scheme, enc["Accept-Encoding"]): ({p: status for p in paths},
                                               {p: kept_status for p in kept})
            for scheme, enc in copies(kind)}


def node_results(engine, task_id):
    """The one node's result for each target: {target: {"state": …, "verified": …, …}}."""
    items = engine.request("GET", f"/v1/tasks/{task_id}/items")[2]["items"]
    return {item["target"]: item["nodes"][0] for item in items}


def node_states(engine, task_id):
    return {target: (result["state"], result.get("reason"))
            for target, result in node_results(engine, task_id).items()}


# Where the agent checks the cache after a purge or preload before it reports success
# (docs/CACHES.md).
VERIFIED = {"url": {"nginx", "varnish", "ats", "squid"}, "soft": {"varnish"}, "pattern": {"nginx"},
            "preload": {"nginx", "varnish", "ats", "squid"}}


@pytest.fixture
def edge(lab, request):
    kind = request.param
    origin = lab.origin(FILES, ORIGIN_EXTRA)
    cache = lab.cache(kind, f"cache-{kind}", origin)
    engine = lab.engine()
    lab.agent(engine, f"edge-{kind}", cache)
    engine.wait_online(f"edge-{kind}")
    return kind, cache, engine


def run(engine, path, fields):
    body = engine.request("POST", path, fields)[2]
    return body["task_id"], engine.wait_task(body["task_id"])


def host_forms(kind, scheme):
    """HOST_FORMS but "h." on Traffic Server, which keeps it apart (docs/CACHES.md)."""
    return [form for form in HOST_FORMS[scheme] if not (kind == "ats" and form.endswith("."))]


@pytest.mark.parametrize("edge", KINDS, indirect=True)
def test_host_forms_are_one_object(edge):
    kind, cache, engine = edge
    checked = {"http": "/v/site.css", "https": "//v/double.css"}
    for scheme, path in checked.items():
        warm(cache, url(scheme, path), IDENTITY)
        forms = host_forms(kind, scheme)
        assert {form: fetch(cache, f"{scheme}://{form}{path}", IDENTITY)[1] for form in forms} == {
            form: "HIT" for form in forms}, f"{kind}: {scheme} host forms are separate objects"
    # The API takes any form of the host too, and names the one object.
    task_id, task = run(engine, "/v1/purge", {"urls": [f"http://{HOST.upper()}:80/v/site.css",
                                                       f"https://{HOST}.:443//v/double.css"]})
    assert task["status"] == "done", (task, node_states(engine, task_id))
    for scheme, path in checked.items():
        form = host_forms(kind, scheme)[-1]
        assert fetch(cache, f"{scheme}://{form}{path}", IDENTITY)[1] == "MISS", (kind, form)


@pytest.mark.parametrize("edge", KINDS, indirect=True)
def test_exact_purges_remove_every_copy(edge):
    kind, cache, engine = edge
    # Half named https://, half http://: either names every copy of the URL.
    urls = [url("https" if i % 2 else "http", path) for i, path in enumerate(URL_PATHS)]
    seen, task_id, task = after_task(kind, cache, engine, "/v1/purge", {"urls": urls}, URL_PATHS,
                                     [TWIN])
    assert task["status"] == "done", (task, node_states(engine, task_id))
    assert seen == each_copy(kind, URL_PATHS, [TWIN], "MISS"), kind
    verified = kind in VERIFIED["url"]
    assert {t: r["verified"] for t, r in node_results(engine, task_id).items()} == {
        u: verified for u in urls}, kind
    assert task["counters"]["verified"] == (len(urls) if verified else 0), task


PATTERN_PURGES = [
    # name, fields, purged paths, kept paths, kinds that cannot (unsupported)
    ("prefix", {"prefixes": [url("https", "/w/")]}, ["/w/1.css", "/w/sub/2.css"], ["/wx/keep.css"],
     {"squid"}),
    ("regex", {"regexes": [r"^https?://www\.example\.com/r/.*%20"]}, ["/r/a%20b.css"],
     ["/r/plain.css"], {"squid"}),
    ("tag in a second header line", {"tags": ["t-two"]}, ["/k/two.css"], ["/k/none.css"],
     {"ats", "squid"}),
    ("tag in a header over 8 KB", {"tags": ["big-tag"]}, ["/k/big.css"], ["/k/none.css"],
     {"ats", "squid"}),
]


@pytest.mark.parametrize("edge", KINDS, indirect=True)
def test_pattern_purges_remove_every_copy(edge):
    kind, cache, engine = edge
    for name, fields, purged, kept, cannot in PATTERN_PURGES:
        seen, task_id, task = after_task(kind, cache, engine, "/v1/purge", fields, purged, kept)
        context = f"{kind} {name}: {task} {node_states(engine, task_id)}"
        if kind in cannot:
            assert [s for s, _ in node_states(engine, task_id).values()] == ["unsupported"], context
            assert seen == each_copy(kind, purged, kept, "HIT"), context
        else:
            assert task["status"] == "done", context
            assert seen == each_copy(kind, purged, kept, "MISS"), context
            assert task["counters"]["verified"] == (kind in VERIFIED["pattern"]), context


@pytest.mark.parametrize("edge", KINDS, indirect=True)
def test_soft_purges_leave_every_copy_stale(edge):
    kind, cache, engine = edge
    target = url("https", "/s/soft.css")
    seen, task_id, task = after_task(kind, cache, engine, "/v1/purge",
                                     {"urls": [target], "mode": "invalidate"}, ["/s/soft.css"])
    if kind in ("nginx", "squid"):  # they cannot mark an object stale
        assert node_states(engine, task_id)[target][0] == "unsupported"
        assert seen == each_copy(kind, ["/s/soft.css"], [], "HIT")
    else:
        assert task["status"] == "done", (task, node_states(engine, task_id))
        assert seen == each_copy(kind, ["/s/soft.css"], [], "STALE"), kind
        assert task["counters"]["verified"] == (kind in VERIFIED["soft"]), task


@pytest.mark.parametrize("edge", KINDS, indirect=True)
def test_a_purge_can_skip_the_check(edge):
    kind, cache, engine = edge
    target = url("http", "/v/site.css")
    seen, task_id, task = after_task(kind, cache, engine, "/v1/purge",
                                     {"urls": [target], "verify": False}, ["/v/site.css"])
    assert task["status"] == "done" and task["verify"] is False, task
    assert seen == each_copy(kind, ["/v/site.css"], [], "MISS"), kind
    assert task["counters"]["verified"] == 0 and node_results(engine, task_id)[target]["verified"] is False


@pytest.mark.parametrize("edge", KINDS, indirect=True)
def test_preloads_fill_the_copy_visitors_get(edge):
    kind, cache, engine = edge
    targets = [url("https", "/pre/https.css"), url("http", "/pre/a%20b.css")]
    task_id, task = run(engine, "/v1/preload", {"urls": targets, "headers": GZIP})
    assert task["status"] == "done", (task, node_states(engine, task_id))
    assert task["counters"]["verified"] == (2 if kind in VERIFIED["preload"] else 0), task
    time.sleep(0.3)  # ATS and Squid finish writing an object just after answering
    assert fetch(cache, targets[0], GZIP)[1] == "HIT", kind  # an HTTPS visitor's copy
    assert fetch(cache, targets[1], GZIP)[1] == "HIT", kind


@pytest.mark.parametrize("edge", KINDS, indirect=True)
def test_a_preload_the_cache_does_not_keep_fails(edge):
    """An origin answer no cache may store (no-store, private) leaves nothing for visitors: the
    preload's check finds no copy, and the preload fails instead of reporting done."""
    kind, cache, engine = edge
    targets = [url("http", "/pre/no-store.css"), url("https", "/pre/private.css")]
    task_id, task = run(engine, "/v1/preload", {"urls": targets})
    assert task["status"] == "failed", (task, node_states(engine, task_id))
    assert node_states(engine, task_id) == {t: ("failed", "not_cached") for t in targets}, kind
    assert fetch(cache, targets[0])[1] != "HIT", kind


def test_the_varnish_probe_reads_the_cache_without_filling_it(lab):
    """What the agent's verification of a Varnish purge relies on (deploy/varnish/edge.vcl)."""
    origin = lab.origin(FILES, ORIGIN_EXTRA)
    cache = lab.cache("varnish", "cache-varnish", origin)
    probe = {"X-Cdr-Probe": "1"}
    assert fetch(cache, url("http", "/v/site.css"), probe)[0] == 404
    assert fetch(cache, url("http", "/v/site.css"), probe)[0] == 404  # the probe cached nothing
    warm(cache, url("http", "/v/site.css"))
    assert fetch(cache, url("http", "/v/site.css"), probe)[0] == 200
    assert fetch(cache, url("https", "/v/site.css"), probe)[0] == 200  # one object for both schemes


@pytest.mark.parametrize("edge", ["varnish", "squid"], indirect=True)
def test_https_visitors_cannot_purge_through_the_tls_terminator(edge):
    """Behind the terminator every visitor comes from loopback, which the caches let purge."""
    kind, cache, engine = edge
    warm(cache, url("https", "/v/site.css"))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", cache.tls_port, timeout=10, context=context)
    conn.request("PURGE", "/v/site.css", headers={"Host": HOST})
    assert conn.getresponse().status == 403, kind
    conn.close()
    assert fetch(cache, url("https", "/v/site.css"))[1] == "HIT", kind
