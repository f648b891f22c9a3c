"""The engine and an agent under valgrind (memcheck) through a whole job — link, URL and prefix
purges and a preload on a real nginx edge, graceful stop — with no memory errors and no leaks:
valgrind exits 99 on either, and that fails the test."""
import os
import shutil

import pytest

from conftest import assert_clean_exit, sanitized_build, warm
from lab import Agent, Engine

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
            f"--suppressions={os.path.join(ROOT, 'tests', 'valgrind.supp')}", "-q"]
SITE = "http://www.example.com"

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
    pytest.mark.skipif(sanitized_build(), reason="valgrind cannot run sanitizer builds"),
]


def test_engine_and_agent_run_clean_under_valgrind(lab, data_dir):
    origin = lab.origin({"/a.css": b"a", "/img/1.png": b"p", "/v.js": b"v"})
    edge = lab.edge("edge1", origin)
    engine = Engine(os.path.join(data_dir, "engine"), ["--threads", "2"])
    engine.wrapper = VALGRIND
    engine.start()
    agent = Agent(data_dir, "edge-1", engine.agent_address, cache=edge)
    agent.wrapper = VALGRIND
    agent.start()
    try:
        engine.wait_online("edge-1", timeout=60)
        warm(edge, SITE + "/a.css")
        purge = engine.purge([SITE + "/a.css"], prefixes=[SITE + "/img/"])[2]["task_id"]
        preload = engine.request("POST", "/v1/preload", {"urls": [SITE + "/v.js"]})[2]["task_id"]
        assert engine.wait_task(purge, timeout=60)["status"] == "done"
        assert engine.wait_task(preload, timeout=60)["status"] == "done"
        assert engine.request("GET", "/metrics")[0] == 200
    finally:
        agent_code, engine_code = agent.stop(), engine.stop()
    assert_clean_exit(agent, agent_code)  # 99 would be valgrind reporting errors or leaks
    assert_clean_exit(engine, engine_code)
