"""Tenant confinement on real caches: a tenant's purges never reach another tenant's objects,
whatever form the attack takes — a host read only in part, a regex whose meaning a cache's
syntax would change, a rule line a cache would cut in two (docs/SECURITY.md). Each class is
tried with several members; after each task another tenant's object must still be a HIT."""
import time

import pytest

from conftest import fetch, wait_until, warm
from test_tenants import add_tenant, signed

FILES = {"/x/victim.css": b"v" * 64, "/x/own.css": b"o" * 64}
VICTIM = "http://victim.test/x/victim.css"  # another tenant's object
OWN = "http://a.acme.test/x/own.css"


@pytest.fixture(params=["nginx", "varnish", "ats"])
def confined(lab, request):
    kind = request.param
    origin = lab.origin(FILES)
    cache = lab.cache(kind, f"cache-{kind}", origin)
    engine = lab.engine(dev=False)
    lab.agent(engine, f"edge-{kind}", cache)
    engine.wait_online(f"edge-{kind}")
    acme = add_tenant(engine, "acme", "*.acme.test")
    wait_until(lambda: signed(engine, acme, "GET", "/v1/tasks")[0] == 200, what="tenant loaded")
    return kind, cache, engine, acme


def attack(kind, cache, engine, acme, fields):
    """Runs one purge by acme (when it is accepted at all); returns its status code."""
    warm(cache, VICTIM)
    warm(cache, OWN)
    if kind == "ats":
        time.sleep(1.05)  # rules cover what was stored before the second they were loaded in
    status, _, body = signed(engine, acme, "POST", "/v1/purge", fields)
    if status == 202:
        path = f"/v1/tasks/{body['task_id']}"
        wait_until(lambda: signed(engine, acme, "GET", path)[2]["status"] not in ("queued", "running"),
                   timeout=30, what="task finished")
    assert fetch(cache, VICTIM)[1] == "HIT", (kind, fields, status, body)
    return status


def test_hosts_are_read_whole_at_any_length(confined):
    kind, cache, engine, acme = confined
    # ^https?:// + N letters + \.acme\.test, then something that is not the host's end.
    for letters in (238, 240, 242, 244, 246, 248):
        host = "a" * letters + "\\.acme\\.test"
        for tail in ("|.*", "|(?:.*)/", ")|(.*"):
            assert attack(kind, cache, engine, acme, {"regexes": [f"^https?://{host}{tail}"]}) == 400


def test_no_cache_syntax_changes_a_checked_regex(confined):
    kind, cache, engine, acme = confined
    for regex in ["^https?://a\\.acme\\.test/(?x)#)|(?:.*[\n]?",
                  "^https?://a\\.acme\\.test/(?x) #)|.*\n",
                  "^https?://a\\.acme\\.test/(?xx)#)|(.*\n)",
                  "^https?://a\\.acme\\.test/(?x:#)|.*\n)",
                  "^https?://a\\.acme\\.test/\\Q#)|.*\\E",
                  "^https?://a\\.acme\\.test/x\"|.*&\t"]:
        attack(kind, cache, engine, acme, {"regexes": [regex]})


def test_no_rule_line_is_cut_in_two(confined):
    kind, cache, engine, acme = confined
    # Invalidated URLs and regexes whose rule line would end near the 2,048 bytes ATS's
    # regex_revalidate reads a line into: a cut there once loaded ".$" (every object) as a rule.
    urls = [f"https://a.acme.test/{'y' * k}." for k in range(2016, 2028)]
    regexes = [f"^https?://a\\.acme\\.test/{'y' * k}(?:.*)" for k in range(2010, 2022, 3)]
    attack(kind, cache, engine, acme, {"urls": urls, "mode": "invalidate"})
    attack(kind, cache, engine, acme, {"regexes": regexes})
