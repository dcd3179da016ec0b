"""GX Data Docs: the file-backed GX project, stored results and the site.

The GX validation results of each day go into a file-backed GX project in
``<output>/gx/``, which renders them as Data Docs in ``<output>/data_docs/``.
:func:`docs_context` opens the project under an exclusive file lock,
:func:`store_results` stores a day's results and renders their pages, and
:func:`publish_docs` prunes old results and rebuilds the index.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import urllib.parse
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metaguard.config import inside_root
from metaguard.contract import SUITE_NAME
from metaguard.validation import load_suite

log = logging.getLogger(__name__)

GX_DIR = "gx"
DATA_DOCS_DIR = "data_docs"
DOCS_LOCK_FILE = ".gx.lock"
SITE_NAME = "metaguard_data_docs"
# Relative to the GX project folder <output>/gx, so the output root can move.
SITE_CONFIG = {
    "class_name": "SiteBuilder",
    "show_how_to_buttons": False,
    "store_backend": {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": f"../{DATA_DOCS_DIR}/",
    },
    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
}


@contextmanager
def docs_context(output: Path) -> Iterator[object]:
    """Yield the file-backed GX context in ``<output>/gx`` under an exclusive lock.

    The lock serializes tasks that write the same GX project, because GX
    writes its stores and the Data Docs index without atomic renames.
    """
    import fcntl

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    output.mkdir(parents=True, exist_ok=True)
    with open(inside_root(output, DOCS_LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            context = gx.get_context(mode="file", project_root_dir=str(output))
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            if context.variables.data_docs_sites != {SITE_NAME: SITE_CONFIG}:
                sites = {SITE_NAME: copy.deepcopy(SITE_CONFIG)}
                context.variables.data_docs_sites = sites
                context.variables.save()
            context.suites.add_or_update(gx.ExpectationSuite(**load_suite()))
            yield context
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def store_results(
    output: Path, day: dt.date, run_time: dt.datetime, results: list
) -> list[str]:
    """Store a day's GX results, render their pages and return the page paths.

    Each batch's result is stored under run name ``dt=YYYY-MM-DD`` and batch
    id ``dt=YYYY-MM-DD-batch-NNNNN``. Paths are relative to ``output``.
    """
    if not results:
        return []
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    suite = ExpectationSuiteIdentifier(name=SUITE_NAME)
    run = RunIdentifier(run_name=f"dt={day.isoformat()}", run_time=run_time)
    with docs_context(output) as context:
        keys = []
        for index, result in enumerate(results):
            batch = f"dt={day.isoformat()}-batch-{index:05d}"
            key = ValidationResultIdentifier(suite, run, batch)
            context.validation_results_store.set(key, result)
            keys.append(key)
        context.build_data_docs(
            site_names=[SITE_NAME], resource_identifiers=keys, build_index=False
        )
        pages = [_page_path(context, output, key) for key in keys]
    log.info("stored %d GX validation result(s) for %s", len(keys), day)
    return pages


def _page_path(context, output: Path, key) -> str:
    urls = context.get_docs_sites_urls(
        resource_identifier=key, site_name=SITE_NAME, only_if_exists=False
    )
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(urls[0]["site_url"]).path))
    return os.path.relpath(path.resolve(), output.resolve())


def prune_results(store, keep: int) -> int:
    """Delete all but the newest ``keep`` validation results of each suite.

    Returns the number deleted. The Data Docs index build then removes the
    pages of deleted results.
    """
    by_suite: dict[str, list] = defaultdict(list)
    for key in store.list_keys():
        by_suite[key.expectation_suite_identifier.name].append(key)
    removed = 0
    for keys in by_suite.values():
        keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
        for key in keys[keep:]:
            store.remove_key(key)
            removed += 1
    return removed


def remove_empty_folders(root: Path) -> int:
    """Delete the empty folders below ``root``, deepest first; return the count."""
    removed = 0
    if not root.is_dir():
        return removed
    for folder, _subfolders, files in os.walk(root, topdown=False):
        path = Path(folder)
        if path != root and not files and not any(path.iterdir()):
            path.rmdir()
            removed += 1
    return removed


def publish_docs(output: Path, keep: int) -> Path:
    """Prune stored GX results to ``keep`` per suite and rebuild the Data Docs index.

    Renders every kept page again when the index page is missing, so a
    deleted site is rebuilt from the stored results.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    index = inside_root(output, DATA_DOCS_DIR, "index.html")
    full = not index.is_file()
    with docs_context(output) as context:
        removed = prune_results(context.validation_results_store, keep)
        resources = None if full else [ExpectationSuiteIdentifier(name=SUITE_NAME)]
        context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=resources)
        # GX deletes the files of pruned results and pages but leaves their
        # run folders behind.
        for folder in (
            inside_root(output, GX_DIR, "uncommitted", "validations"),
            inside_root(output, DATA_DOCS_DIR, "validations"),
        ):
            remove_empty_folders(folder)
    log.info(
        "Data Docs index %s rebuilt (%s); %d old validation result(s) pruned, "
        "keeping %d per suite",
        index,
        "all pages" if full else "index only",
        removed,
        keep,
    )
    return index
