"""The former name of :mod:`workbench.notebooks.helpers`, kept so notebooks that import ``api`` still run.

Importing it gives the very same module object (one ``_state``, one connection), not a copy.
"""

import sys

from workbench.notebooks import helpers

sys.modules[__name__] = helpers
