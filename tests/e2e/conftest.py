"""Fixtures for end-to-end tests: the real engine and CLI binaries on free loopback ports."""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

BUILD_DIR = os.path.abspath(os.environ.get("CDR_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build")))
ENGINE_BIN = os.path.join(BUILD_DIR, "cdnrefresh-engine")
CLI_BIN = os.path.join(BUILD_DIR, "cdnrefresh")
LSAN_SUPPRESSIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "lsan.supp"))
os.environ.setdefault("LSAN_OPTIONS", f"suppressions={LSAN_SUPPRESSIONS}:print_suppressions=0")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """One cdnrefresh-engine process with its own data dir and port; restartable on the same dir."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(data_dir, "engine.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        args = [ENGINE_BIN, "--dev", "--data-dir", self.data_dir, "--api-listen", f"127.0.0.1:{self.port}",
                "--synchronous", "normal", *self.extra_args]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}: {self.read_log()}")
            try:
                status, _, _ = self.request("GET", "/healthz")
                if status == 200:
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("engine did not become healthy: " + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=None, raw=None, conn=None):
        """Sends one request; returns (status, headers dict, parsed JSON or raw text)."""
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        result_headers = {k.lower(): v for k, v in response.getheaders()}
        if own:
            conn.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode(errors="replace")
        return response.status, result_headers, parsed

    def purge(self, urls, **fields):
        return self.request("POST", "/v1/purge", {"urls": urls, **fields})

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory(prefix="cdr-e2e-") as d:
        yield d


@pytest.fixture
def make_engine(data_dir):
    engines = []

    def make(*extra_args, directory=None):
        engine = Engine(directory or data_dir, extra_args)
        engines.append(engine)
        return engine.start()

    yield make
    for engine in engines:
        code = engine.stop()
        assert code in (0, None, -signal.SIGKILL), f"engine exited {code}: {engine.read_log()}"
        assert "ERROR: AddressSanitizer" not in engine.read_log()
        assert "runtime error:" not in engine.read_log()


@pytest.fixture
def engine(make_engine):
    return make_engine()


def run_cli(engine_url, *args, timeout=30):
    """Runs the cdnrefresh CLI; returns CompletedProcess with text output."""
    return subprocess.run([CLI_BIN, "--engine", engine_url, *args], capture_output=True, text=True,
                          timeout=timeout)
