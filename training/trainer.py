"""The training API in one place: the loop, its set-up from a config, and ``fit``.

Each job has its own module; this one names them (and keeps ``tfpot.training.trainer`` imports
working):

=========================  =====================================================================
:mod:`.loop`               :class:`Trainer`: optimiser steps, epochs, checkpoint state
:mod:`.evaluation`         validation, best model, test-set report, ``summary.json``
:mod:`.loggers`            console and progress bar, ``train.log``, ``metrics.csv``, TensorBoard
:mod:`.stopping`           Ctrl-C / SIGTERM, run length and early stopping
:mod:`.budget`             a ``max_time`` budget turned into a number of epochs, once
:mod:`.resume`             the resume guard and the config changes a resume allows
:mod:`.run`                :func:`train_run` / :func:`train_from_config` (``tfpot train``)
:mod:`.fitting`            :func:`fit` on in-memory ASE structures
=========================  =====================================================================
"""

from tfpot.training.fitting import fit
from tfpot.training.loop import Callback, Trainer
from tfpot.training.run import train_from_config, train_run

__all__ = ["Callback", "Trainer", "fit", "train_from_config", "train_run"]
