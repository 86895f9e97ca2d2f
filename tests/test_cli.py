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


def test_train_trains_a_model_as_the_configs_experiment_does(tmp_path):
    """`stereo-occ train --model M` applies the config's experiment.overrides for M, then the command line's."""
    from stereo_occ.cli import train_config

    config = tmp_path / "c.yaml"
    config.write_text("train: {iterations: 100, lr: 0.0005}\n"
                      "experiment: {overrides: {rig-stereo: [train.iterations=750, train.lr=0.001]}}\n")
    alone = train_config(config, "rig-stereo", [])
    assert (alone.model.name, alone.train.iterations, alone.train.lr) == ("rig-stereo", 750, 0.001)
    mine = train_config(config, None, ["model.name=rig-stereo", "train.iterations=5"])  # the command line wins
    assert (mine.train.iterations, mine.train.lr) == (5, 0.001)
    plain = train_config(config, "mono", [])  # no overrides of its own: the file as it is
    assert (plain.model.name, plain.train.iterations, plain.train.lr) == ("mono", 100, 0.0005)
