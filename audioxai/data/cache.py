"""The on-disk cache of generated corpora, keyed by the generator's configuration.

Every generated corpus lives in ``$AUDIOXAI_CACHE/<name>/<key>/`` (default cache root
``~/.cache/audioxai``), where ``key`` is a hash of the generator's configuration. A corpus is built
in a temporary folder beside its final place and renamed into place only when complete, so an
interrupted build never leaves a half-written corpus; a changed configuration gets a new key and is
generated anew, an unchanged one is reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audioxai.config import config_hash

logger = logging.getLogger(__name__)

__all__ = ["cache_root", "cached_corpus"]

_COMPLETE = "corpus_config.json"


def cache_root() -> Path:
    """The cache folder: ``$AUDIOXAI_CACHE`` when set, else ``~/.cache/audioxai``."""
    return Path(os.environ.get("AUDIOXAI_CACHE") or Path.home() / ".cache" / "audioxai").expanduser()


def cached_corpus(name: str, config: Any, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """Return the folder of corpus ``name`` for ``config``, calling ``build(folder)`` only when missing.

    ``config`` is a dataclass or dict; its hash names the folder and it is saved there as
    ``corpus_config.json``, the marker of a complete corpus.
    """
    key = config_hash(config)
    base = (root or cache_root()) / name
    final = base / key
    if (final / _COMPLETE).is_file():
        logger.info("using cached %s corpus at %s", name, final)
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=base))
    try:
        logger.info("generating %s corpus into %s", name, final)
        build(tmp)
        payload = config if isinstance(config, dict) else _as_dict(config)
        (tmp / _COMPLETE).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        if final.exists() and not (final / _COMPLETE).is_file():  # leftover of an interrupted build
            shutil.rmtree(final)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / _COMPLETE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same corpus first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _as_dict(config: Any) -> dict:
    import dataclasses

    return dataclasses.asdict(config)
