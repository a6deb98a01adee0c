"""The one module of keras-gated that reads KerasTuner's private names;
`tests/test_scaling.py::test_private_keras_and_keras_tuner_pieces_are_still_there`
fails loudly the day one moves.

* `Tuner._get_checkpoint_fname`: where a trial's weights are kept.
* The grid oracle's order of trials (`GridSearchOracle._compare`,
  `_ordered_ids`, `_populate_next`, `keras_tuner.src.tuners.gridsearch.LinkedList`),
  which KerasTuner 1.4 does not save, rebuilt after a reload.
"""

import functools


def trial_checkpoint_path(tuner, trial_id):
    """The weights file KerasTuner keeps for a trial (`Tuner._get_checkpoint_fname`).

    Under a multi-worker strategy KerasTuner keeps it on the chief alone
    (the others save to a temporary directory and remove it).
    """
    return tuner._get_checkpoint_fname(trial_id)


def rebuild_grid_order(oracle):
    """Rebuilds a reloaded `GridSearchOracle`'s ordered list of trials from
    the trials' values, so that each trial's next combination is tried
    unless it was tried already."""
    from keras_tuner.src.tuners.gridsearch import LinkedList

    def compare(a, b):
        return oracle._compare(
            oracle.trials[a].hyperparameters.values, oracle.trials[b].hyperparameters.values
        )

    ordered = sorted(oracle.trials, key=functools.cmp_to_key(compare))
    oracle._ordered_ids = LinkedList()
    for trial_id in ordered:
        oracle._ordered_ids.insert(trial_id)
    oracle._populate_next = list(ordered)
