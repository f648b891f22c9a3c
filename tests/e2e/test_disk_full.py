"""A full disk: the engine answers 503 store_unavailable, acknowledges nothing it could not
persist, keeps serving reads, and accepts again once space returns (no restart)."""
import os
import subprocess
import tempfile

import pytest

from conftest import Engine, sqlite_only


@pytest.fixture
def small_disk():
    mount_point = tempfile.mkdtemp(prefix="cdr-full-")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mount_point],
                            capture_output=True, text=True)
    if result.returncode != 0:
        os.rmdir(mount_point)
        pytest.skip(f"needs root to mount a small tmpfs: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", mount_point], check=True)
    os.rmdir(mount_point)


@sqlite_only
def test_full_disk_refuses_then_recovers(small_disk):
    engine = Engine(os.path.join(small_disk, "data"), ["--log-level", "error"])
    engine.log_path = os.path.join(tempfile.gettempdir(), f"cdr-full-{os.getpid()}.log")
    engine.start()
    try:
        accepted, refused = [], None
        for i in range(2000):
            status, headers, body = engine.purge([f"https://full.example/{i}/" + "x" * 1500])
            if status == 202:
                accepted.append(body["task_id"])
                continue
            refused = (status, headers, body)
            break
        assert refused is not None, "the disk never filled"
        status, headers, body = refused
        assert status == 503
        assert body["error"]["code"] == "store_unavailable"
        assert headers["retry-after"] == "1"
        assert "disk is full" in engine.read_log()
        for task_id in accepted:
            assert engine.request("GET", f"/v1/tasks/{task_id}")[0] == 200

        subprocess.run(["mount", "-o", "remount,size=16m", small_disk], check=True)
        status, _, body = engine.purge(["https://full.example/after"])
        assert status == 202
        assert engine.request("GET", f"/v1/tasks/{body['task_id']}")[0] == 200
    finally:
        assert engine.stop() == 0
        os.unlink(engine.log_path)
