"""SQLite writers take turns: threads of one engine, two engines on one file, forked workers."""

import multiprocessing
import threading
import time

from sqlalchemy import create_engine

from panoptes import database

HOLD = 0.5


def _turn_taken_at(engine, out):
    with database.writer_turn(engine):
        out.put(time.monotonic())


def test_a_forked_worker_and_another_engine_wait_for_the_turn(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine, other_engine = create_engine(url), create_engine(url)
    context = multiprocessing.get_context("fork")
    with database.writer_turn(engine):  # opens this process's lock file before the fork
        pass
    taken = context.Queue()
    with database.writer_turn(engine):
        # A gunicorn worker forked from a process that already wrote, and a second engine
        # (another app on the same file) in this process.
        child = context.Process(target=_turn_taken_at, args=(engine, taken))
        child.start()
        thread = threading.Thread(target=_turn_taken_at, args=(other_engine, taken))
        thread.start()
        time.sleep(HOLD)
        released = time.monotonic()
    child.join(10)
    thread.join(10)
    assert child.exitcode == 0
    times = [taken.get(timeout=5), taken.get(timeout=5)]
    assert all(t >= released for t in times)


def test_threads_of_one_engine_take_turns(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    inside = []
    overlaps = []

    def write():
        for _ in range(20):
            with database.writer_turn(engine):
                inside.append(1)
                time.sleep(0.001)  # gives up the GIL: without the turn, another thread is in
                overlaps.append(len(inside) > 1)
                inside.pop()

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlaps) == 80 and not any(overlaps)
