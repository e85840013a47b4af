"""ctxengine's benchmark harness: ``python -m benchmarks`` runs every section; each
``python -m benchmarks.NAME`` (or ``python benchmarks/NAME.py``) runs one.

Importing the package sets the environment every script shares, once: the on-disk
embedding cache under ``.cache/embeddings`` (``CTXENGINE_EMBED_CACHE`` wins when set) and
offline model loading. Data is read from ``--data``, ``$CTXENGINE_DATA`` or
``../shared/data`` (:mod:`benchmarks.data`).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("CTXENGINE_EMBED_CACHE", str(ROOT / ".cache" / "embeddings"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
