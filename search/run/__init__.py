"""The `run` command as a package, one module per concern (data flows down this list):

options       RunOptions and `validate` (checks only)
process       signals, garbage collection, the command line without secrets
setup         workers, search space, sampler, pruning rule, training config, storage
budget        the study's trial budget and the one training budget a study holds
total         --total-trials: the study-wide budget of sampled trials, counted exactly
eta           how long the rest will take, from what this device measured
objective     one trial: suggest, train, store
console       what a run prints
confirmation  front configurations re-run under new seeds
provenance    what the study records about itself and each run
driver        `run_study`, top to bottom
"""

from search.run.driver import run_study
from search.run.options import RunOptions

__all__ = ["RunOptions", "run_study"]
