"""The command line's contract (../shared/DESIGN.md): one command whose every verb answers --help."""

from __future__ import annotations

import pytest

from stereo_occ.cli import build_parser, main

VERBS = ("dataset", "preview", "train", "train-axis", "evaluate", "reconstruct", "experiment", "compare")


def test_every_verb_is_listed():
    """The contract's verbs are there, and a new verb joins VERBS (and so the --help test below)."""
    choices = next(a for a in build_parser()._actions if a.dest == "verb").choices
    assert set(VERBS) == set(choices)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_answers_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: stereo-occ {verb}") and len(text) > 200  # a description, not just the usage line
