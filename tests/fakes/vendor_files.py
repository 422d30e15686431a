"""Where the real vendor API definitions are (Workday, NetSuite WSDLs).

They are read where they lie, never copied into the project: ``$<ENV>`` if set,
else ``shared/vendor/`` beside the repository, else ``/work/shared/vendor/``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["vendor_file"]

_REPO = Path(__file__).resolve().parents[2]
_PLACES = (_REPO.parent / "shared" / "vendor", Path("/work/shared/vendor"))


def vendor_file(relative: str, env: str) -> Path:
    """The file ``relative`` under the vendor folder (the first place it exists)."""
    configured = os.environ.get(env)
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else (_REPO / path).resolve()
    candidates = [place / relative for place in _PLACES]
    return next((c for c in candidates if c.exists()), candidates[0])
