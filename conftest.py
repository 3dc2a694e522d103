"""Defaults for every pytest run of this repository, tests and notebooks (``pytest --nbmake tests notebooks``).

The notebooks default to the ``tiny`` scale when ALAD_SCALE is unset, for a person at them; under pytest they must
run at ``smoke`` as CI does (``.ci/run`` exports the same values), or the README's test command would fine-tune
the teacher for most of an hour. nbmake's kernels inherit this environment. Values already set are kept.
"""

import os

os.environ.setdefault("ALAD_SCALE", "smoke")
os.environ.setdefault("ALAD_STATIC_WIDGETS", "1")  # nbmake has no widget front end: the explorer shows static figures
