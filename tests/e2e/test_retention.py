"""Task retention (tasks.retention_days): finished tasks older than it are deleted with their
targets in small pieces, newer ones and the counts by state stay right."""
import random
import time

from conftest import wait_until

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
DAY_MS = 86400000


def task_id(ms, rng):
    """An id of the engine's layout (48 bits of ms, 80 random bits, Crockford base32)."""
    value = (ms << 80) | rng.getrandbits(80)
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def copies_of_task(template_id, new_ids):
    """SQL that copies one task and its targets under each of new_ids (ids are base32: no quoting
    needed), for the engine's store whichever it is."""
    script = []
    for table, key in (("tasks", "id"), ("task_targets", "task_id")):
        script.append(f"CREATE TEMP TABLE copied AS SELECT * FROM {table} WHERE {key} = '{template_id}'")
        for new_id in new_ids:
            script.append(f"UPDATE copied SET {key} = '{new_id}'")
            script.append(f"INSERT INTO {table} SELECT * FROM copied")
        script.append("DROP TABLE copied")
    return ";".join(script) + ";SELECT 1"


def test_old_finished_tasks_are_deleted_and_new_ones_kept(make_engine):
    engine = make_engine(offline_node=False)  # no node: a task fails at once, and is finished
    _, _, body = engine.purge(["https://example.com/a", "https://example.com/b"])
    template = engine.wait_task(body["task_id"])
    assert template["status"] == "failed"
    engine.stop()
    rng = random.Random(5)
    now = int(time.time() * 1000)
    old = [task_id(now - 40 * DAY_MS + i, rng) for i in range(2000)]  # two pieces of 5,000 rows
    recent = [task_id(now - 10 * DAY_MS + i, rng) for i in range(20)]
    engine.store_sql(copies_of_task(template["task_id"], old + recent))

    engine.extra_args += ["--retention-days", "30"]
    engine.start()
    wait_until(lambda: '"event":"tasks.pruned"' in engine.read_log(), timeout=30,
               what="the first round of retention")
    assert "deleted 2000 finished tasks older than 30 days" in engine.read_log()
    for gone in (old[0], old[1500], old[-1]):
        assert engine.request("GET", f"/v1/tasks/{gone}")[0] == 404
        assert engine.request("GET", f"/v1/tasks/{gone}/items")[0] == 404
    for kept in (recent[0], recent[-1], template["task_id"]):
        status, _, task = engine.request("GET", f"/v1/tasks/{kept}")
        assert status == 200 and task["targets"]["urls"] == 2
    _, _, stats = engine.request("GET", "/v1/stats")
    assert stats["tasks_by_state"]["failed"] == 21  # counted as they went, not by a scan
    assert engine.store_sql("SELECT count(*) FROM task_targets") == [(str(21 * 2),)]
