"""fleet room: one scenario on many machines through Ray, merged into fleet.json / fleet.html.

Ray is an optional extra (`pip install 'harness[fleet]'`): only `driver` and `local` import it, and only
when a fleet command runs. Nothing here imports torch; on each node the work is `python -m harness run`.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = ("harness fleet needs Ray, an optional extra: pip install 'harness[fleet]' "
                "(or: pip install -c constraints.txt 'ray==2.60.0'); every node of the cluster needs it "
                "and harness installed too")


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None
