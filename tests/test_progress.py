"""Progress bars and spinners: every item still yielded, nothing printed when quiet."""

from __future__ import annotations

import pytest

from trtq import progress


@pytest.fixture(autouse=True)
def _restore():
    before = progress.is_quiet()
    yield
    progress.set_quiet(before)


def test_set_quiet_is_read_back():
    progress.set_quiet(True)
    assert progress.is_quiet() is True
    progress.set_quiet(False)
    assert progress.is_quiet() is False


@pytest.mark.parametrize("quiet", [True, False])
def test_track_yields_every_item_in_order(quiet, capsys):
    progress.set_quiet(quiet)
    assert list(progress.track([3, 1, 2], "work")) == [3, 1, 2]
    assert list(progress.track(iter(range(4)), "work")) == [0, 1, 2, 3]  # no len(): no total
    assert list(progress.track((i for i in range(2)), "work", total=2)) == [0, 1]
    with progress.status("exporting"):
        pass
    if quiet:
        assert capsys.readouterr() == ("", "")


def test_quiet_track_is_lazy():
    progress.set_quiet(True)
    seen = []

    def items():
        for i in range(3):
            seen.append(i)
            yield i

    it = progress.track(items(), "work")
    assert seen == [] and next(it) == 0 and seen == [0]


def test_no_bar_and_no_blank_line_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    progress.set_quiet(False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert list(progress.track(range(3), "work")) == [0, 1, 2]
    with progress.status("exporting"):
        pass
    assert capsys.readouterr() == ("", "")  # rich used to leave one blank line per bar in a log
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # a terminal: the bar is drawn
    assert list(progress.track(range(3), "work")) == [0, 1, 2]
    assert "work" in capsys.readouterr().err
