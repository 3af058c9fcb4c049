"""``python -m tests.fuzzing``: see :mod:`tests.fuzzing.run`."""

import sys

from .run import main

sys.exit(main())
