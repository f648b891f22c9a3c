"""The engine as a process: flags, config errors, data dir lock, signals."""
import os
import re
import socket
import subprocess

import pytest

from conftest import AGENT_BIN, ENGINE_BIN, Agent, Engine, free_port, sqlite_only


def run_engine(*args):
    return subprocess.run([ENGINE_BIN, *args], capture_output=True, text=True, timeout=20)


def test_help_lists_every_contract_flag():
    result = run_engine("--help")
    assert result.returncode == 0
    for flag in ("--api-listen", "--agent-listen", "--data-dir", "--config", "--dev", "--version",
                 "--max-body-bytes", "--max-items", "--max-url-length", "default: 127.0.0.1:8470"):
        assert flag in result.stdout


def test_version_names_commit():
    result = run_engine("--version")
    assert result.returncode == 0
    assert re.match(r"cdnrefresh-engine \S+ \(commit ([0-9a-f]{7,12}|unknown), built \d{4}-\d\d-\d\dT", result.stdout)


def test_bad_settings_are_named(data_dir):
    result = run_engine("--dev", "--data-dir", data_dir, "--max-items", "0")
    assert result.returncode == 2
    assert "limits.max_items_per_request must be 1..100000, got '0'" in result.stderr
    result = run_engine("--dev", "--data-dir", data_dir, "--api-listen", "localhost")
    assert result.returncode == 2 and "engine.api_listen" in result.stderr
    result = run_engine("--dev", "--data-dir", data_dir, "--bogus", "1")
    assert result.returncode == 2 and "--bogus" in result.stderr


def test_dev_mode_refuses_non_loopback(data_dir):
    result = run_engine("--dev", "--data-dir", data_dir, "--api-listen", "0.0.0.0:8470")
    assert result.returncode == 2 and "loopback" in result.stderr


def test_signed_mode_refuses_insecure_defaults(data_dir):
    """Without --dev: no open agent port and no public callback secret, unless asked for."""
    secret = ("--callback-secret", "an-operators-secret")
    cases = [  # (arguments, what the refusal names)
        (["--agent-listen", "0.0.0.0:18471", *secret], "agents.token is empty"),
        (["--agent-listen", "[::]:18471", *secret], "agents.token is empty"),
        (["--agent-listen", "0.0.0.0:18471", "--agent-token", "x" * 31, *secret], "shorter than 32"),
        (["--agent-listen", "127.0.0.1:18471"], "callbacks.secret"),
        (["--agent-listen", "127.0.0.1:18471", "--callback-secret", "change-me"], "callbacks.secret"),
        (["--agent-listen", "127.0.0.1:18471", "--callback-secret", ""], "callbacks.secret"),
    ]
    for args, named in cases:
        result = run_engine("--data-dir", data_dir, "--api-listen", "127.0.0.1:18470", *args, "--help")
        assert result.returncode == 0  # --help still teaches
        result = run_engine("--data-dir", data_dir, "--api-listen", "127.0.0.1:18470", *args)
        assert result.returncode == 2 and named in result.stderr and "--allow-insecure" in result.stderr, (
            args, result.stderr)


def test_allow_insecure_starts_with_a_warning(make_engine):
    engine = make_engine("--agent-listen", "0.0.0.0:0", "--allow-insecure", dev=False,
                         offline_node=False)
    assert "config.insecure" in engine.read_log()


def test_config_file_sets_limits(make_engine, data_dir):
    path = os.path.join(data_dir, "engine.ini")
    with open(path, "w") as f:
        f.write("[limits]\nmax_items_per_request = 2\n")
    engine = make_engine("--config", path)
    status, _, body = engine.purge(["https://a.com/1", "https://a.com/2", "https://a.com/3"])
    assert status == 400 and body["error"]["code"] == "too_many_items"
    status, _, _ = engine.purge(["https://a.com/1", "https://a.com/2"])
    assert status == 202


@sqlite_only
def test_second_engine_on_same_data_dir_is_refused(engine):
    result = run_engine("--dev", "--data-dir", engine.data_dir, "--api-listen", f"127.0.0.1:{free_port()}",
                        "--agent-listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "in use by another engine" in result.stderr


def test_unusable_data_dir_is_reported():
    result = run_engine("--dev", "--data-dir", "/proc/cdr-no-such-dir/x", "--api-listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "/proc/cdr-no-such-dir" in result.stderr


def test_store_address_chooses_where_tasks_are_kept(make_engine, data_dir):
    """--store sqlite:DIR keeps the tasks in DIR whatever --data-dir says, across a restart, and
    the tenant command finds them there too; without --store the data dir's store is used."""
    elsewhere = os.path.join(data_dir, "elsewhere")
    engine = make_engine("--store", f"sqlite:{elsewhere}")
    status, _, body = engine.purge(["http://www.example.com/kept"])
    assert status == 202, body
    assert os.path.exists(os.path.join(elsewhere, "cdnrefresh.db"))
    assert not os.path.exists(os.path.join(engine.data_dir, "cdnrefresh.db"))
    assert f"store sqlite:{elsewhere}" in engine.read_log()
    engine.stop()
    engine.start()
    assert engine.task(body["task_id"])["task_id"] == body["task_id"]
    engine.stop()
    added = subprocess.run([ENGINE_BIN, "tenant", "add", "acme", "--hosts", "example.com",
                            "--store", f"sqlite:{elsewhere}", "--json"],
                           capture_output=True, text=True, timeout=20)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([ENGINE_BIN, "tenant", "list", "--store", f"sqlite:{elsewhere}"],
                            capture_output=True, text=True, timeout=20)
    assert listed.returncode == 0 and "acme" in listed.stdout, listed


@pytest.mark.parametrize("address", ["/var/lib/cdnrefresh", "sqlite:", "SQLite:/tmp/x",
                                     "mysql://cdr:s3cret-pw@127.0.0.1:3306/cdr"])
def test_a_store_value_that_is_not_an_address_is_named_and_its_password_never_shown(data_dir, address):
    result = run_engine("--dev", "--data-dir", data_dir, "--store", address)
    assert result.returncode == 2, result
    assert "store.url (--store): a store address is sqlite:DIR" in result.stderr, result.stderr
    assert "s3cret-pw" not in result.stderr and "s3cret-pw" not in result.stdout
    tenant = subprocess.run([ENGINE_BIN, "tenant", "list", "--store", address],
                            capture_output=True, text=True, timeout=20)
    assert tenant.returncode == 2 and "a store address is sqlite:DIR" in tenant.stderr, tenant
    assert "s3cret-pw" not in tenant.stderr


def test_a_postgresql_store_it_cannot_reach_stops_the_engine_naming_it_without_its_password(data_dir):
    address = f"postgresql://cdr:s3cret-pw@127.0.0.1:{free_port()}/cdr"
    result = run_engine("--dev", "--data-dir", data_dir, "--store", address,
                        "--api-listen", f"127.0.0.1:{free_port()}")
    assert result.returncode != 0, result
    output = result.stdout + result.stderr
    assert "cannot connect to postgresql://cdr@127.0.0.1:" in output, output
    assert "s3cret-pw" not in output


def test_sigterm_exits_zero_and_readyz_stays_truthful(make_engine):
    engine = make_engine()
    assert engine.request("GET", "/readyz")[0] == 200
    assert engine.stop() == 0
    assert "engine.stopped" in engine.read_log()


@pytest.mark.parametrize("binary", [ENGINE_BIN, AGENT_BIN])
def test_config_doc_lists_every_flag(binary):
    """docs/CONFIG.md stays true: every flag --help prints is documented there."""
    import re
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    flags = set(re.findall(r"^  (--[a-z-]+)", help_text, re.M)) - {"--help", "--version", "--config"}
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "CONFIG.md")) as f:
        doc = f.read()
    assert flags, help_text
    missing = [flag for flag in sorted(flags) if f"`{flag}" not in doc]
    assert missing == []


def test_agent_flags_are_checked():
    missing = subprocess.run([AGENT_BIN, "--engine", "127.0.0.1:1"], capture_output=True, text=True)
    assert missing.returncode == 2 and "agent.node_id is required" in missing.stderr
    bad_window = subprocess.run([AGENT_BIN, "--node-id", "a", "--window", "0"], capture_output=True, text=True)
    assert bad_window.returncode == 2 and "agent.window must be 1..65536" in bad_window.stderr
    unknown_cache = subprocess.run([AGENT_BIN, "--node-id", "a", "--cache", "memcached"], capture_output=True,
                                   text=True, timeout=10)
    assert unknown_cache.returncode == 2
    assert "cache.kind must be one of nginx|varnish|ats|squid, got 'memcached'" in unknown_cache.stderr
    version = subprocess.run([AGENT_BIN, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("cdnrefresh-agent ")


@pytest.mark.parametrize("abstract", [False, True])
def test_engine_and_agent_tell_systemd_when_ready_and_stopping(data_dir, monkeypatch, abstract):
    name = os.path.join(data_dir, "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name if abstract else name)  # what systemd listens on for Type=notify
    receiver.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name if abstract else name)
    engine = Engine(os.path.join(data_dir, "engine")).start()
    ready = receiver.recv(4096).decode()
    assert ready.startswith("READY=1\nSTATUS=API on 127.0.0.1:") and engine.agent_address in ready
    agent = Agent(data_dir, "edge-1", engine.agent_address, f"http://127.0.0.1:{free_port()}").start()
    assert receiver.recv(4096) == b"READY=1"
    assert agent.stop() == 0 and receiver.recv(4096) == b"STOPPING=1"
    assert engine.stop() == 0 and receiver.recv(4096) == b"STOPPING=1"
    receiver.close()
