"""Command line: ``python -m audioxai.book run --profile quick|full [--only NAME]`` and ``... build``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from audioxai.book.runner import PROFILES, RunReport, run_book
from audioxai.book.site import BookBuildError, build_book
from audioxai.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m audioxai.book",
                                     description="Run the book's notebooks with papermill, then build the book.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute the notebooks with papermill under a profile")
    run.add_argument("--profile", choices=PROFILES, required=True, help="parameter set from configs/profiles.yaml")
    run.add_argument("--only", action="append", metavar="NAME",
                     help="run only this notebook stem (e.g. 00_corpora); repeat for several")
    commands.add_parser("build", help="compile the executed notebooks into _build/html (warnings are errors)")
    return parser


def _summary(report: RunReport) -> str:
    width = max(len(r.stem) for r in report.runs)
    lines = [f"{r.stem:<{width}}  {r.status:<6}  {r.seconds:7.1f} s" + (f"  {r.error}  -> {r.executed_path}"
                                                                       if r.error else "")
             for r in report.runs]
    ok = len(report.runs) - len(report.failed)
    verdict = f"failed: {', '.join(report.failed)}" if report.failed else "all succeeded"
    lines.append(f"{report.profile}: {ok}/{len(report.runs)} notebooks ok, {verdict}; record: {report.record_path}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 1 when a notebook or the build failed, 2 on a configuration error."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        if args.command == "run":
            report = run_book(args.profile, only=args.only)
            print(_summary(report))
            return 1 if report.failed else 0
        print(f"book: {build_book() / 'index.html'}")
        return 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BookBuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
