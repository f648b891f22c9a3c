"""The status page in a real browser: Debian's chromium, headless, driven by playwright-core
(tests/browser/status_page.mjs). The page loads without console errors, shows a submitted task's
progress and its tenant's quota use, summarises a fleet of 2,001 nodes (2,000 simulated) by state
and group, shows them a page at a time and finds them by search, and shows a node going offline —
first in the table — within seconds of its agent being killed, all by refreshing itself — served
on the admin listener of an engine that takes only signed requests. The screenshot is kept in
docs/ and as a test artefact."""
import json
import os
import shutil
import subprocess

from conftest import start_simulated_agents
from test_tenants import add_tenant, signed

SITE = "http://www.example.com"
BROWSER_DIR = os.path.join(os.path.dirname(__file__), "..", "browser")
ARTEFACT = os.environ.get("CDR_ARTEFACTS", "/tmp/cdnrefresh-artefacts")
FLEET = 2001


def test_status_page_in_chromium(lab):
    origin = lab.origin({"/a.css": b"a"})
    edge = lab.edge("edge1", origin)
    engine = lab.engine(dev=False)
    acme = add_tenant(engine, "acme", "www.example.com", "--quota-purge-urls", "100", "--rate-requests", "50")
    add_tenant(engine, "other", "*.example.net")
    agent = lab.agent(engine, "edge-1", edge, groups="eu")
    engine.wait_online("edge-1")
    sim = start_simulated_agents(engine, FLEET - 1)
    status, headers, page = engine.admin("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "<title>cdnrefresh status</title>" in page and "http" not in page.split("<script>")[1].split("fetch(")[0]

    os.makedirs(ARTEFACT, exist_ok=True)
    screenshot = os.path.join(ARTEFACT, "status-page.png")
    browser = subprocess.Popen(["node", os.path.join(BROWSER_DIR, "status_page.mjs"),
                                f"http://127.0.0.1:{engine.admin_port}/", "edge-1", screenshot, str(FLEET)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=BROWSER_DIR)
    try:
        assert browser.stdout.readline().strip() == "ready"
        status, _, body = signed(engine, acme, "POST", "/v1/purge", {"urls": [SITE + "/a.css", SITE + "/b.css"]})
        assert status == 202, body
        browser.stdin.write(body["task_id"] + "\n")
        browser.stdin.flush()
        assert browser.stdout.readline().strip() == "done"
        agent.kill9()
        browser.stdin.write("killed\n")
        browser.stdin.flush()
        summary = browser.stdout.readline().strip()
        assert summary.startswith("{"), summary
        assert json.loads(summary)["offlineAfterMs"] < 5000
    finally:
        browser.stdin.close()
        sim.kill()
        sim.wait()
        assert browser.wait(timeout=30) == 0
    assert os.path.getsize(screenshot) > 10000
    if not os.environ.get("CI"):
        shutil.copy(screenshot, os.path.join(os.path.dirname(__file__), "..", "..", "docs", "status-page.png"))
