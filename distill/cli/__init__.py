"""What the commands (``python -m distill.run|evaluate|export``) share; the only library code that imports Hydra.

One concept per module: :mod:`~distill.cli.config_directory` (where ``conf/`` is),
:mod:`~distill.cli.error_policy` (one-line errors and exit codes),
:mod:`~distill.cli.overrides` (command-line checks), :mod:`~distill.cli.training`
(loss terms, trainer and logger from the config), :mod:`~distill.cli.teachers`
(teachers, ensembles and baselines from the config), :mod:`~distill.cli.saved_run`
(a saved run rebuilt for evaluate and export) and :mod:`~distill.cli.sweep_summary`
(the table written after a sweep). ``cli/`` never imports a command module.
"""
