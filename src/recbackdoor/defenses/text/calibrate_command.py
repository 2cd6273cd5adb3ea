"""The ``recbackdoor calibrate-scanner`` command: its help, its arguments and its entry point.

Kept apart from ``cli.py`` so that building the parser imports nothing heavy; the work itself is in
``recalibration.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CALIBRATE_HELP = """\
Re-threshold a saved scanner on titles of your own domain and save the copy.

The shipped threshold flags 1 % of held-out Netflix movie titles; on other kinds
of names it flags more (Steam game names: 7.5 %). Given titles you trust (a
vetted past catalogue, titles written in-house), this sets the threshold so that
--fpr of those distinct titles would be flagged, and writes a copy of the model
with that threshold into --out (the model itself is unchanged; scanner.json
records the previous threshold, the input file's SHA-256 and this command).
Do not calibrate on the catalogue you are about to scan: a trigger's own titles
would then help set the threshold.
"""

CALIBRATE_EPILOG = """\
exit codes:
  0    success; one line with the old and new threshold
  2    bad input or paths (one line on stderr); nothing is written at --out
  130  interrupted (Ctrl-C); nothing is written at --out

example:
  recbackdoor calibrate-scanner --model default --input vetted_games.csv --column name --out games_scanner
  recbackdoor scan --model games_scanner --input new_games.csv --column name --output new_games.scanned.csv
"""


def add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    calib = sub.add_parser("calibrate-scanner", help="re-threshold a scanner on trusted titles of your own domain",
                           description=CALIBRATE_HELP, epilog=CALIBRATE_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    calib.add_argument("--model", required=True, metavar="DIR|default", help="the scanner to re-threshold")
    calib.add_argument("--input", required=True, type=Path, metavar="FILE",
                       help="trusted titles (.csv, .jsonl, .parquet); at least 200 distinct")
    calib.add_argument("--column", required=True, metavar="NAME", help="the column (JSONL: key) holding the titles")
    calib.add_argument("--out", required=True, type=Path, metavar="DIR", help="the new model folder; must not exist")
    calib.add_argument("--fpr", type=float, default=0.01,
                       help="share of these titles the new threshold flags (default 0.01)")
    calib.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def calibrate_scanner_command(args: argparse.Namespace) -> int:
    from recbackdoor.defenses.text.recalibration import recalibrate

    record = recalibrate(args.model, args.input, args.column, args.out, args.fpr, progress=not args.no_progress)
    print(f"wrote {args.out}: threshold {record['previous_threshold']:.4f} -> {record['threshold']:.4f} "
          f"(flags {args.fpr:.1%} of {record['titles']:,} distinct titles in {args.input})")
    return 0
