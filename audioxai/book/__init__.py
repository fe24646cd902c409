"""The book machinery: run the notebooks with papermill, build the Jupyter Book, record results.

Notebooks import the result helpers from here::

    from audioxai.book import prepare_results_dir, record_metrics, compare_with_reference

The command line is ``python -m audioxai.book run --profile quick|full [--only NAME]`` and
``python -m audioxai.book build``.
"""

from __future__ import annotations

from audioxai.book.results import (
    compare_with_reference,
    prepare_results_dir,
    project_root,
    record_metrics,
    reference_metrics,
    to_jsonable,
)

__all__ = [
    "project_root",
    "prepare_results_dir",
    "to_jsonable",
    "record_metrics",
    "reference_metrics",
    "compare_with_reference",
]
