"""The ``recbackdoor`` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recbackdoor.errors import UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recbackdoor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one experiment config end to end")
    run.add_argument("config", type=Path)
    run.add_argument("--out", type=Path, default=None, help="output folder (default runs/<config name>)")
    run.add_argument("--only", nargs="*", default=[], metavar="KEY=VALUE",
                     help="run only matching cells, e.g. dataset=lastfm trigger=char position=end")
    run.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                     help="override config keys, e.g. tallrec.epochs=3")
    run.add_argument("--no-cache", action="store_true", help="recompute every stage")

    audit = sub.add_parser("audit-extractor", help="audit a third-party image feature extractor")
    audit.add_argument("--weights", type=Path, required=True)
    audit.add_argument("--arch", required=True)
    audit.add_argument("--images", type=Path, default=None)
    audit.add_argument("--out", type=Path, default=None)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from recbackdoor.experiments.cache import StageCache
    from recbackdoor.experiments.context import parse_only
    from recbackdoor.experiments.runner import run_experiment
    from recbackdoor.processes import is_main_process

    out = args.out or Path("runs") / args.config.stem
    only = parse_only(args.only)
    payload = run_experiment(args.config, out, args.overrides, only, StageCache(enabled=not args.no_cache))
    if not is_main_process():  # under several processes only the main one wrote the files
        return 0
    print((out / "tables.md").read_text())
    print(f"wrote {out / 'results.json'} ({len(payload['cells'])} cells, {payload['timings']['total']:.0f} s)")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    try:
        from recbackdoor.defenses.vision.audit import audit_command
    except ImportError as exc:  # the vision side may not be installed in a text-only checkout
        raise UserError(f"audit-extractor is unavailable: {exc}") from None
    return audit_command(args)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "audit-extractor":
            return _cmd_audit(args)
    except UserError as exc:
        print(f"recbackdoor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recbackdoor: interrupted; finished stages are cached, re-run to resume", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
