"""The ``carbs-like`` command line (entry point :func:`carbs_like.cli.main.main`).

* ``main.py``: the parser and the commands (imported by nothing);
* ``experiment.py``: the experiment folder, its tuner and its trainable;
* ``run.py``: running trials in local processes, and the progress table;
* ``ray_backend.py``: running trials through Ray Tune;
* ``verify.py``: proposals for larger runs, and training them to check.
"""
