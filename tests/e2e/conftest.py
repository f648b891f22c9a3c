"""Fixtures for end-to-end tests: the real engine, agent and CLI binaries, and real caches (nginx,
Varnish, Squid, Traffic Server), all on free loopback ports (scripts/lab.py starts them)."""
import os
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from lab import (AGENT_BIN, BUILD_DIR, CLI_BIN, ENGINE_BIN, STORE, Agent, Engine,  # noqa: E402,F401
                 fetch, free_port, start_cache, start_edge, start_origin, start_simulated_agents,
                 wait_until, warm)

LSAN_SUPPRESSIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "lsan.supp"))
os.environ.setdefault("LSAN_OPTIONS", f"suppressions={LSAN_SUPPRESSIONS}:print_suppressions=0")


# Tests of what only SQLite's data directory does: skipped when the lab's engines keep their
# tasks in PostgreSQL (CDR_STORE=postgres).
sqlite_only = pytest.mark.skipif(STORE != "sqlite", reason="SQLite's data directory")


def closed_by_server(sock, within_s):
    """True when the other end closes sock (EOF or reset) within within_s seconds."""
    sock.settimeout(within_s)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def sanitized_build():
    """True when the binaries under test are the ASan+UBSan build."""
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        return "CDR_SANITIZE:BOOL=ON" in f.read()


def assert_clean_exit(process, code):
    log = process.read_log()
    allowed = (0, None, -signal.SIGKILL, getattr(process, "expected_exit", 0))
    assert code in allowed, f"{process.log_path} exited {code}: {log}"
    assert "ERROR: AddressSanitizer" not in log and "ERROR: LeakSanitizer" not in log, log
    assert "runtime error:" not in log, log


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory(prefix="cdr-e2e-") as d:
        yield d


def register_offline_node(engine, work_dir, node_id="edge-offline"):
    """Connects an agent once and stops it: the node stays registered, offline, so tasks are
    planned onto it and wait for it (queued) instead of failing for want of any node."""
    agent = Agent(work_dir, node_id, engine.agent_address, f"http://127.0.0.1:{free_port()}",
                  groups="eu,us").start()
    engine.wait_online(node_id)
    assert_clean_exit(agent, agent.stop())
    wait_until(lambda: engine.nodes()[node_id]["state"] == "offline", what="node offline")


@pytest.fixture
def make_engine(data_dir):
    engines = []

    def make(*extra_args, directory=None, offline_node=True, dev=True):
        engine = Engine(directory or os.path.join(data_dir, "engine"), extra_args, dev=dev)
        engines.append(engine)
        engine.start()
        if offline_node:
            register_offline_node(engine, data_dir)
        return engine

    yield make
    for engine in engines:
        assert_clean_exit(engine, engine.stop())


@pytest.fixture
def engine(make_engine):
    return make_engine()


@pytest.fixture
def lab(data_dir):
    """Starts and stops processes of the lab; every process must exit cleanly."""
    processes = []

    class Lab:
        dir = data_dir

        def add(self, process):
            processes.append(process)
            return process

        def engine(self, *extra_args, name="engine", dev=True):
            return self.add(Engine(os.path.join(data_dir, name), extra_args, dev=dev)).start()

        def origin(self, files, extra=""):
            """An nginx origin serving files; extra is more of its config (location blocks)."""
            return self.add(start_origin(data_dir, files, extra))

        def edge(self, name, origin):
            return self.add(start_edge(data_dir, name, origin))

        def cache(self, kind, name, origin):
            """An edge cache of kind nginx, varnish, squid or ats in front of origin."""
            return self.add(start_cache(kind, data_dir, name, origin))

        def agent(self, engine, node_id, edge=None, **kwargs):
            if edge is not None:
                kwargs["cache"] = edge
            else:
                kwargs["cache_url"] = f"http://127.0.0.1:{free_port()}"
            return self.add(Agent(data_dir, node_id, engine.agent_address, **kwargs)).start()

    yield Lab()
    for process in reversed(processes):
        code = process.stop()
        if isinstance(process, (Engine, Agent)):  # ours must exit cleanly; nginx as it likes
            assert_clean_exit(process, code)


def run_cli(engine_url, *args, timeout=30):
    """Runs the cdnrefresh CLI; returns CompletedProcess with text output."""
    return subprocess.run([CLI_BIN, "--engine", engine_url, *args], capture_output=True, text=True,
                          timeout=timeout)
