"""How the node reads a worker's pipe (core/worker_output.py): the label records that give
each line its task, and when an unfinished line is printed. The end-to-end behaviour (a
driver's terminal) is in test_api_lifecycle.py."""

import os

from mpiray.core import worker_output
from mpiray.core.log_dedup import LogLines
from mpiray.core.worker_main import LABEL
from mpiray.core.worker_output import PARTIAL_LINE_MAX_S, PARTIAL_LINE_S, _Source


def _source(tmp_path):
    r, w = os.pipe()
    os.close(w)
    return _Source(r, LogLines("stdout"), "(f pid=1) ", str(tmp_path / "w.out"))


def test_label_records_rename_the_lines_after_them_and_stay_out_of_the_log(tmp_path):
    source = _source(tmp_path)
    shown = source.split(f"one\nraw no newline{LABEL}(g pid=1) \ntwo\n".encode(), 0.0)
    assert shown == ["(f pid=1) one", "(f pid=1) raw no newline", "(g pid=1) two"]
    source.close()
    assert (tmp_path / "w.out").read_text() == "one\nraw no newline\ntwo\n"
    os.close(source.fd)


def test_an_unfinished_line_waits_while_more_of_it_arrives(tmp_path):
    source = _source(tmp_path)
    step = PARTIAL_LINE_S * 0.75
    now = 0.0
    assert source.split(b"x" * 65536, now) == []
    while now + step < PARTIAL_LINE_MAX_S:   # (a long print() read in pieces: not cut)
        now += step
        assert source.split(b"x" * 65536, now) == []
        assert not source.due(now)
    assert source.due(now + PARTIAL_LINE_S)   # (nothing more: printed, ended)
    assert source.due(PARTIAL_LINE_MAX_S)     # (a counter writing on forever: printed too)
    [line] = source.unfinished()
    assert line == "(f pid=1) " + "x" * 65536 * (1 + round(now / step))
    assert not source.due(now + 10)
    source.split(b"done\nnext", now + 10)     # (a new unfinished line starts its own clock)
    assert not source.due(now + 10 + PARTIAL_LINE_S / 2)
    os.close(source.fd)


def test_the_drivers_fd_limit_is_raised_as_far_as_rays(monkeypatch):
    calls = []
    monkeypatch.setattr(worker_output.resource, "getrlimit", lambda _: (1024, 1 << 20))
    monkeypatch.setattr(worker_output.resource, "setrlimit", lambda _, v: calls.append(v))
    worker_output.allow_worker_pipes()
    assert calls == [(65536, 1 << 20)]
