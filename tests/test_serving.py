"""The process-wide memories every server path shares (toolkit.serving)."""

import threading

import numpy as np

from toolkit.serving import Memo, RowMemo


def test_memo_makes_once_and_drops_the_least_recently_used():
    memo, made = Memo(2), []

    def make(key):
        return lambda: made.append(key) or key.upper()

    assert memo.get("a", make("a")) == "A" and memo.get("a", make("a")) == "A"
    memo.get("b", make("b"))
    memo.get("a", make("a"))  # a is now the most recent
    memo.get("c", make("c"))  # drops b
    assert made == ["a", "b", "c"] and "b" not in memo and "a" in memo and len(memo) == 2
    assert memo.peek("zz", "none") == "none" and memo.peek("c") == "C" and sorted(memo.values()) == ["A", "C"]
    memo.forget(lambda key: key != "a")
    assert "a" not in memo and "c" in memo
    memo.forget()
    assert len(memo) == 0


def test_memo_is_safe_under_threads():
    memo = Memo(4)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(memo.get(i % 3, lambda i=i: i % 3)))
               for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(results)) == [0, 1, 2] and len(memo) == 3


def test_row_memo_computes_only_missing_rows():
    memo, asked = RowMemo(3), []

    def compute(indices):
        asked.append(list(indices))
        return [np.full(2, i, np.float32) for i in indices]

    memo.rows(["x", "y"], compute)
    rows = memo.rows(["y", "z"], lambda idx: [np.full(2, 9.0, np.float32) for _ in idx])
    assert asked == [[0, 1]] and rows[0][0] == 1 and rows[1][0] == 9
    memo.rows(["w"], compute)  # past max_rows: the least recently used (x) goes
    assert len(memo) == 3


def test_a_helper_process_ends_when_its_parent_is_killed(tmp_path):
    """end_with_parent: a child that is still busy (as a worker warming up) ends within seconds of
    its parent being killed, with no clean-up run by the parent."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    pid_file = tmp_path / "child.pid"
    child = ("import os, time; from toolkit.serving import end_with_parent; end_with_parent(0.1); "
             f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
    parent = ("import subprocess, sys, time; "
              f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(120)")
    root = str(Path(__file__).resolve().parent.parent)
    middle = subprocess.Popen([sys.executable, "-c", parent], env={**os.environ, "PYTHONPATH": root})
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        os.kill(pid, 0)  # alive while its parent is
        middle.send_signal(signal.SIGKILL)
        middle.wait()
        deadline = time.monotonic() + 10
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "the child outlived its killed parent by 10 s"
            time.sleep(0.1)
    finally:
        middle.kill()
