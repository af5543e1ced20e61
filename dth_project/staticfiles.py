"""Static files served by the application server (WhiteNoise), with DEBUG off too.

``WhiteNoiseMiddleware`` also serves ``STATIC_ROOT``, and warns at every start when that
directory does not exist, which is the normal case here: with ``WHITENOISE_USE_FINDERS`` the
files are served from where the static finders find them, no ``collectstatic`` needed. This
middleware serves ``STATIC_ROOT`` when it exists (after a ``collectstatic``) and is quiet when
it does not.
"""

from __future__ import annotations

import os

from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    def add_files(self, root: str, prefix: str | None = None) -> None:
        if os.fspath(root) == os.fspath(self.static_root or "") and not os.path.isdir(root):
            return
        super().add_files(root, prefix)
