"""The project's own seeded mutation fuzzer (issues 13 and 21).

- :mod:`.seeds` writes valid seed inputs: the real sample files and small files our writers (and
  ome-arrow 0.1.0, and tifffile) produce, for every format we read.
- :mod:`.mutators` holds the named, seeded mutation strategies.
- :mod:`.worker` reads one case in a long-lived subprocess under a memory cap and a timeout.
- :mod:`.classify` turns a read into an outcome (``ok_same``, ``clear_error``, ``raw_error``, ...).
- :mod:`.runner` runs a bounded campaign on a small worker pool and summarises it.

``tests/test_fuzz.py`` runs a bounded campaign in the test suite; ``python -m tests.fuzzing --help``
(or ``python tests/fuzzing/run.py``) runs longer ones.
"""
