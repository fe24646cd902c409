"""audioxai: explainable AI for audio, the package behind the book.

Importing the package sets Hugging Face libraries to offline mode: nothing in audioxai opens
a network connection, and models load only from local paths.
"""

from __future__ import annotations

import os

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
