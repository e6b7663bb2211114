"""Every method of the project measured on one prepared corpus.

A suite is a plan file (``hparams/suite/*.yaml``): speaker folds, seeds
and, per task, the systems to run (a recipe, its yaml and overrides),
read and checked by :func:`load_plan` (``plan.py``).
:func:`plan_runs` (``runs.py``) expands it into one :class:`Run` per
system, fold and seed; :func:`execute` (``execute.py``) runs them one
after the other as subprocesses, skipping finished runs, so an
interrupted suite resumes where it stopped. A run starts only once the
runs whose folders it reads finished, and never in a folder another
process holds; its processes end with the suite's
(:mod:`emotion_invariant.suite.process`). :func:`compare_commands`
(``tables.py``) then builds each task's comparison table::

    python -m emotion_invariant.suite hparams/suite/real.yaml \\
        --corpus ravdess --data_folder /path/to/Audio_Speech_Actors_01-24 \\
        --output_folder results/real/ravdess
"""

from emotion_invariant.suite.execute import execute
from emotion_invariant.suite.plan import SuiteError, load_plan
from emotion_invariant.suite.runs import Run, plan_runs
from emotion_invariant.suite.tables import compare_commands

__all__ = [
    "Run",
    "SuiteError",
    "compare_commands",
    "execute",
    "load_plan",
    "plan_runs",
]
