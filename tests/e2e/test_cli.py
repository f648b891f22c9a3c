"""The cdnrefresh CLI against a real engine: output, --json, --wait and exit codes."""
import json
import os
import subprocess
import time

from conftest import CLI_BIN, free_port, run_cli


def test_purge_prints_task_id_and_task_shows_it(engine):
    result = run_cli(engine.url, "purge", "https://example.com/a.css", "--prefix", "https://example.com/img/",
                     "--tag", "t1", "--mode", "invalidate", "--group", "eu", "--deadline", "120")
    assert result.returncode == 0, result.stderr
    task_id = result.stdout.strip()
    status, _, task = engine.request("GET", f"/v1/tasks/{task_id}")
    assert status == 200
    assert task["mode"] == "invalidate" and task["nodes"] == {"groups": ["eu"]} and task["deadline_s"] == 120
    assert task["targets"] == {"urls": 1, "prefixes": 1, "regexes": 0, "tags": 1}

    shown = run_cli(engine.url, "task", task_id)
    assert shown.returncode == 0
    assert f"task:        {task_id}" in shown.stdout
    assert "status:      queued" in shown.stdout
    assert "1 urls, 1 prefixes, 0 regexes, 1 tags" in shown.stdout
    assert task["verify"] is True


def test_no_verify_reaches_purges_and_preloads(engine):
    for command in ("purge", "preload"):
        result = run_cli(engine.url, command, "https://example.com/a.css", "--no-verify")
        assert result.returncode == 0, result.stderr
        task = engine.request("GET", f"/v1/tasks/{result.stdout.strip()}")[2]
        assert task["verify"] is False, (command, task)


def test_preload_with_header_and_json_output(engine):
    result = run_cli(engine.url, "--json", "preload", "https://example.com/v.mp4", "--header", "Accept-Encoding: gzip")
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["type"] == "preload"
    _, _, stored = engine.request("GET", f"/v1/tasks/{task['task_id']}")
    assert stored["headers"] == {"Accept-Encoding": "gzip"}


def test_tasks_table_items_and_cancel(engine):
    ids = [run_cli(engine.url, "purge", f"https://example.com/{i}").stdout.strip() for i in range(3)]
    table = run_cli(engine.url, "tasks")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["TASK", "TYPE", "MODE", "STATUS", "TARGETS", "CREATED"]
    assert [line.split()[0] for line in lines[1:4]] == ids[::-1]

    items = run_cli(engine.url, "items", ids[0])
    assert "https://example.com/0" in items.stdout and "pending" in items.stdout

    canceled = run_cli(engine.url, "cancel", ids[1])
    assert canceled.returncode == 0
    assert "status:      canceled" in canceled.stdout
    only = run_cli(engine.url, "--json", "tasks", "--state", "canceled")
    assert [t["task_id"] for t in json.loads(only.stdout)["tasks"]] == [ids[1]]
    again = run_cli(engine.url, "cancel", ids[1])
    assert again.returncode == 3
    assert "task_final" in again.stderr


def test_nodes_says_none_registered(make_engine):
    engine = make_engine(offline_node=False)
    result = run_cli(engine.url, "nodes")
    assert result.returncode == 0
    assert "no nodes have registered" in result.stdout


def test_nodes_table_shows_each_node(engine):
    result = run_cli(engine.url, "nodes")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NODE", "CACHE", "STATE", "GROUPS", "QUEUED", "DONE", "FAILED", "UNSUPPORTED",
                               "HEARTBEAT"]
    assert lines[1].split()[:8] == ["edge-offline", "nginx", "offline", "eu,us", "0", "0", "0", "0"]
    assert lines[1].endswith("(never finished an item)")  # it only said Hello


def test_exit_codes(engine):
    refused = run_cli(engine.url, "purge", "not-a-url")
    assert refused.returncode == 3
    assert "invalid_url" in refused.stderr and "urls[0]" in refused.stderr
    missing = run_cli(engine.url, "task", "01M87BCTXNBXVP8BSWWYX7577R")
    assert missing.returncode == 3
    unreachable = run_cli(f"http://127.0.0.1:{free_port()}", "tasks")
    assert unreachable.returncode == 4
    assert "cannot reach the engine" in unreachable.stderr
    assert run_cli(engine.url, "frobnicate").returncode == 2
    assert run_cli(engine.url, "purge", "https://a.com/", "--deadline", "soon").returncode == 2
    assert subprocess.run([CLI_BIN], capture_output=True).returncode == 2


def test_wait_times_out_with_progress_lines(engine):
    result = run_cli(engine.url, "purge", "https://example.com/slow", "--wait", "--timeout", "1")
    assert result.returncode == 5
    task_id = result.stdout.strip()
    assert f"{task_id} queued: 0/1 results" in result.stderr  # waiting for the offline node
    assert "has not finished after 1s" in result.stderr


def test_wait_ends_when_task_is_canceled(engine):
    proc = subprocess.Popen([CLI_BIN, "--engine", engine.url, "purge", "https://example.com/x", "--wait",
                             "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    task_id = proc.stdout.readline().strip()
    time.sleep(0.5)
    status, _, _ = engine.request("DELETE", f"/v1/tasks/{task_id}")
    assert status == 200
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert f"{task_id} canceled:" in err


def test_help_and_version():
    help_text = subprocess.run([CLI_BIN, "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    for word in ("purge URL", "preload URL", "--wait", "Exit codes"):
        assert word in help_text.stdout
    version = subprocess.run([CLI_BIN, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("cdnrefresh ")


def test_wait_draws_a_progress_bar_on_a_terminal(engine):
    import os
    import pty
    leader, follower = pty.openpty()
    proc = subprocess.Popen([CLI_BIN, "--engine", engine.url, "purge", "https://example.com/tty", "--wait",
                             "--timeout", "1"], stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    out, _ = proc.communicate(timeout=20)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert proc.returncode == 5
    text = screen.decode(errors="replace")
    assert "\r[------------------------------]   0% " + out.strip() + " queued: 0/1" in text
    assert "has not finished after 1s" in text


def test_replay_resubmits_an_access_log_to_another_engine(make_engine, data_dir):
    log_path = os.path.join(data_dir, "access.log")
    source = make_engine("--access-log", log_path, directory=os.path.join(data_dir, "source"))
    purge = {"urls": ["https://example.com/r1.css"], "prefixes": ["https://example.com/r/"]}
    preload = {"urls": ["https://example.com/r2.js"], "headers": {"Accept-Encoding": "gzip"}}
    assert source.request("POST", "/v1/purge", purge)[0] == 202
    assert source.request("POST", "/v1/preload", preload)[0] == 202
    assert source.request("POST", "/v1/purge", {"urls": ["not a url"]})[0] == 400
    assert source.request("GET", "/v1/tasks")[0] == 200
    with open(log_path) as f:
        logged = [json.loads(line) for line in f]
    assert logged[0]["path"] == "/healthz"  # the lab's own readiness probes come first
    lines = [line for line in logged if line["path"].startswith(("/v1/purge", "/v1/preload", "/v1/tasks"))]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/v1/purge", 202), ("POST", "/v1/preload", 202), ("POST", "/v1/purge", 400),
        ("GET", "/v1/tasks", 200)]
    assert json.loads(lines[0]["body"]) == purge and "body" not in lines[3]
    assert all(line["ts"].endswith("Z") and line["us"] >= 0 for line in logged)

    target = make_engine(directory=os.path.join(data_dir, "target"), offline_node=False)
    result = run_cli(target.url, "--json", "replay", log_path, "--rate", "50")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("sent", "accepted", "refused", "failed", "skipped")} == {
        "sent": 2, "accepted": 2, "refused": 0, "failed": 0, "skipped": len(logged) - 2}
    tasks = sorted(target.request("GET", "/v1/tasks")[2]["tasks"], key=lambda t: t["type"])
    assert [(t["type"], t["targets"]) for t in tasks] == [
        ("preload", {"urls": 1, "prefixes": 0, "regexes": 0, "tags": 0}),
        ("purge", {"urls": 1, "prefixes": 1, "regexes": 0, "tags": 0})]

    with_refused = run_cli(target.url, "replay", log_path, "--rate", "0", "--all")
    assert with_refused.returncode == 3, with_refused.stderr
    assert "replayed 3 requests" in with_refused.stdout and "1 refused (4xx)" in with_refused.stdout
    missing = run_cli(target.url, "replay", os.path.join(data_dir, "none.log"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert run_cli(target.url, "replay", log_path, "--rate", "fast").returncode == 2
