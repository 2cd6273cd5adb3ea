"""The ``recbackdoor`` command."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from recbackdoor.defenses.text.calibrate_command import add_calibrate_parser, calibrate_scanner_command
from recbackdoor.errors import UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recbackdoor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub)

    audit = sub.add_parser(
        "audit-extractor", help="audit a third-party image feature extractor",
        description="Search a safetensors image extractor for a backdoor trigger: 60 candidate stamps first, then "
                    "trigger inversion per class (with the classifier head) and on the features alone; thresholds "
                    "come from clean reference extractors shipped with the package.",
        epilog="exit codes: 0 pass, 1 flagged, 2 bad input (one line on stderr)")
    audit.add_argument("--weights", type=Path, required=True, metavar="FILE", help="the extractor (.safetensors)")
    audit.add_argument("--arch", required=True, help="alexnet | resnet")
    audit.add_argument("--images", type=Path, default=None, metavar="DIR",
                       help="your own clean catalogue images (.png/.jpg, no labels needed; default: Fashion-MNIST "
                            "test images)")
    audit.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="write audit.txt, audit.json, trigger.png and audit.html here")
    audit.add_argument("--no-head", action="store_true",
                       help="ignore the classifier head (absent or untrusted): embedding-only tests")
    audit.add_argument("--no-inversion", action="store_true", help="candidate stamps only (fast)")
    audit.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                       help="trigger-inversion thresholds (default: the calibration shipped with the package)")
    audit.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _add_scan(sub)
    add_calibrate_parser(sub)
    _add_scanner_training(sub)
    _add_report(sub)
    _add_tables(sub)
    return parser


def _add_scanner_training(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train-scanner", help="train P-Scanner and the fast default scanner on benign Netflix titles",
        description="Train P-Scanner (SmolLM2 + LoRA, trigger augmentation agent, adversarial rounds; resumes "
                    "round by round) and then the fast student scanner on the same synthetic data, calibrate its "
                    "threshold on held-out benign titles and save it (safetensors + scanner.json).",
        epilog="exit codes: 0 success, 2 bad config or paths (one line on stderr), 130 interrupted "
               "(finished rounds are kept; re-run to resume)",
    )
    train.add_argument("--config", type=Path, default=None, metavar="FILE",
                       help="TOML with [pscanner], [student] and [distill] sections (default: built-in settings; "
                            "configs/scanner/default.toml is the shipped model's recipe)")
    train.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder for the trained scanner")
    train.add_argument("--pscanner", type=Path, default=None, metavar="DIR",
                       help="where P-Scanner is trained or already lies (default: DIR.pscanner beside --out)")
    train.add_argument("--llm-only", action="store_true",
                       help="train only P-Scanner (the LLM scanner) into --out; resumes round by round")
    train.add_argument("--student", default=None, metavar="DIR|default",
                       help="reuse this trained student (a student or fused scanner folder, or 'default'): train only "
                            "the Unicode channel ([channel]) and fuse the two into --out (about a minute)")

    evaluate = sub.add_parser(
        "eval-scanner", help="measure a scanner on MovieLens, LastFM and Steam titles with unseen triggers",
        description="Score every catalogue title of MovieLens-100K, LastFM and Steam clean and with each of the "
                    "paper's triggers (end / random position) and each held-out trigger family; writes "
                    "results.json (AUROC, TPR and FPR at the saved threshold) and tables.md.",
        epilog="exit codes: 0 success, 2 bad input (one line on stderr)",
    )
    evaluate.add_argument("--model", required=True, metavar="DIR|default")
    evaluate.add_argument("--out", type=Path, required=True, metavar="DIR")
    evaluate.add_argument("--variant", default="p-scanner", help="the cells' variant name (default p-scanner)")
    evaluate.add_argument("--sample", type=_positive_int, default=None, metavar="N",
                          help="a seeded sample of N titles per dataset instead of all (for the slow LLM)")
    evaluate.add_argument("--family-sample", type=_positive_int, default=None, metavar="N",
                          help="titles per dataset for the held-out families (default: as --sample)")
    evaluate.add_argument("--no-families", action="store_true", help="paper triggers only")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--examples", type=int, default=3, metavar="K",
                          help="flagged and missed titles kept per cell, with their suspect span (each span costs "
                               "~30 extra scores: keep it small for the LLM)")


SCAN_HELP = """\
Score every title of a catalogue file for an inserted backdoor trigger and write
the catalogue back with the verdicts.

Formats (from the extension, the same for input and output): .csv (UTF-8, header
row, every cell read as text), .jsonl (one JSON object per line), .parquet.
The output holds every input row and column unchanged and in order, plus:
  poison_score  float in [0, 1]: how likely the title carries an inserted trigger
  flagged       true when poison_score is above the model's saved threshold
  suspect       for flagged rows, the character, word or phrase that drives the
                score; empty otherwise
With --recurrence, one more column:
  recurring_span  the recurring span the title carries (see --recurrence);
                  empty otherwise. Remove a row when flagged is true OR
                  recurring_span is not empty.
The output is written to a temporary file and renamed into place only when the
whole scan succeeded; an existing output file is never overwritten.
"""

SCAN_EPILOG = """\
exit codes:
  0    success; a summary line (rows, flagged, seconds, titles/s) on stderr
  2    bad input or paths: one line on stderr naming the file, row and field;
       nothing is written at the output path
  130  interrupted (Ctrl-C); nothing is written at the output path

example:
  recbackdoor scan --model default --input items.csv --column title --output items.scanned.csv
  recbackdoor scan --model default --input items.csv --column title --output items.scanned.csv --recurrence
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_scan(sub: argparse._SubParsersAction) -> None:
    scan = sub.add_parser("scan", help="flag catalogue titles that carry a backdoor trigger",
                          description=SCAN_HELP, epilog=SCAN_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    scan.add_argument("--model", required=True, metavar="DIR|default",
                      help="a folder saved by 'recbackdoor train-scanner', or 'default' for the scanner shipped "
                           "with the package ('default-v1': its student alone, the default until 2026-12-02)")
    scan.add_argument("--input", required=True, type=Path, metavar="FILE", help="catalogue to scan (.csv, .jsonl, "
                      ".parquet)")
    scan.add_argument("--column", required=True, metavar="NAME", help="the column (JSONL: key) holding the titles")
    scan.add_argument("--output", required=True, type=Path, metavar="FILE",
                      help="where to write the scanned catalogue; same format as the input; must not exist")
    scan.add_argument("--batch-size", type=_positive_int, default=2048, metavar="N",
                      help="rows read, scored and written at a time; bounds memory (default 2048)")
    scan.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    scan.add_argument("--recurrence", action="store_true",
                      help="also test the whole catalogue: a trigger must recur to plant a backdoor, so every word "
                           "and non-ASCII character carried by >= 5 distinct titles is tested for scoring high "
                           "together more often than chance (binomial, Bonferroni, family-wise alpha 1e-3) and kept "
                           "only if taking it out brings those titles back down; catches triggers each title "
                           "alone scores below the threshold. Reads the input three times (each row scored once); "
                           "adds the column recurring_span and a summary line of the spans found")


_KEY_VALUE = re.compile(r"[A-Za-z_][\w.\-]*=")


def _spread_values(args: list[str], flags: frozenset[str]) -> list[str]:
    """Rewrite ``--set a=1 b=2`` as ``--set a=1 --set b=2``, stopping at the first token that is not KEY=VALUE.

    Why: a flag with ``nargs="*"`` is greedy, so ``run --set a=1 CONFIG`` took the config path as a second
    override. Each flag now takes one value and may be repeated; extra values after one flag are still
    accepted, but only while they look like KEY=VALUE (a dotted name, then '='), and a token that names
    an existing file is never taken: the positional config path cannot be swallowed.
    """
    out: list[str] = []
    flag: str | None = None  # the repeatable flag whose values may continue
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":  # everything after '--' is positional
            return out + args[index:]
        if flag is not None and _KEY_VALUE.match(token) and not os.path.exists(token):
            out += [flag, token]
        elif token in flags and index + 1 < len(args):
            flag = token
            out += [token, args[index + 1]]  # the flag's own value, whatever it looks like
            index += 1
        else:
            flag = token.split("=", 1)[0] if token.split("=", 1)[0] in flags else None  # --set=a=1 b=2
            out.append(token)
        index += 1
    return out


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose ``spread_options`` take one KEY=VALUE each, repeatable, or several after one flag."""

    spread_options: frozenset[str] = frozenset()

    def parse_known_args(self, args: list[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """Spread several values after one flag into repeated flags, then parse as usual."""
        if args is not None and self.spread_options:
            args = _spread_values(list(args), self.spread_options)
        return super().parse_known_args(args, namespace)


RUN_EPILOG = """\
--set and --only take one KEY=VALUE each and may be repeated; several values
after one flag work too (--only dataset=lastfm trigger=char), and CONFIG may
stand before or after them.

exit codes:
  0    success; tables.md is printed and results.json written
  2    bad config, override, --only filter or data (one line on stderr)
  130  interrupted (Ctrl-C); finished stages are cached, re-run to resume

examples:
  recbackdoor run configs/small/rung2_llara_ml100k_top12.toml --only variant=badrec --only trigger=char
  recbackdoor run --set train.epochs=5 --set "attack.rates=[0.3]" configs/small/rung2_llara_ml100k.toml
"""

REPORT_HELP = """\
Render results.json files as one self-contained HTML page: the papers' tables
with our matching cells beside them, every plot the results support (inline
PNG: ASR vs poisoning rate, fine-tuning curves, VBPR factor length, t-SNE,
defense cost, scanner AUROC/TPR), mean ± std for multi-seed cells, and each
run's command, machine and wall time. No network is needed to build or view it.
"""

REPORT_EPILOG = """\
exit codes:
  0    success; one summary line on stdout
  2    bad input (a missing path, a folder without results.json, invalid JSON,
       a cell without metrics): one line on stderr; nothing is written
  130  interrupted (Ctrl-C); nothing is written at the output path

The page is written to a temporary file and renamed into place.

example:
  recbackdoor report docs/results --out report.html
"""


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run one experiment config end to end",
                         description="Run one experiment config end to end (data, attack, victims, defenses,\n"
                                     "metrics) and write results.json and tables.md.",
                         epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.spread_options = frozenset({"--set", "--only"})
    run.add_argument("config", type=Path, metavar="CONFIG", help="experiment config (.toml)")
    run.add_argument("--out", type=Path, default=None, help="output folder (default runs/<config name>)")
    run.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                     help="run only matching cells, e.g. dataset=lastfm (repeatable)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. tallrec.epochs=3 (repeatable)")
    run.add_argument("--no-cache", action="store_true",
                     help="recompute every stage (the fresh results replace the cached ones)")


def _add_report(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="render results.json files as one self-contained HTML page",
                            description=REPORT_HELP, epilog=REPORT_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                        help="results.json files, or folders searched recursively for results.json")
    report.add_argument("--out", type=Path, required=True, metavar="FILE.html", help="the page to write")
    report.add_argument("--title", default="recbackdoor results", help="the page's title")


TABLES_EPILOG = """\
exit codes:
  0    success; the tables on stdout
  2    bad input (a missing path, a folder without results.json, invalid JSON): one line on stderr

examples:
  recbackdoor tables docs/results/badembnets_alexnet docs/results/badembnets_resnet
  recbackdoor tables docs/results/scanner_default docs/results/scanner_p-scanner
  recbackdoor tables docs/results/asr_vs_pr_tallrec_ml100k --asr-plot asr.png
"""


def _add_tables(sub: argparse._SubParsersAction) -> None:
    tables = sub.add_parser("tables", help="print the paper-shaped Markdown tables of results.json files",
                            description="Print the paper-shaped Markdown tables of results.json files: BadRec "
                                        "cells, defense tables (Tables 2-6), scanner detection tables, "
                                        "BadEmbNets Tables 2-10. Runs of one kind are set side by side (the first "
                                        "scanner given is the main one).",
                            epilog=TABLES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    tables.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                        help="results.json files, or folders searched recursively for results.json")
    tables.add_argument("--asr-plot", type=Path, default=None, metavar="FILE.png",
                        help="also plot ASR against poisoning rate from the BadRec runs given (merged)")
    tables.add_argument("--title", default=None, help="the plot's title (default: the first run's name)")


def _cmd_tables(args: argparse.Namespace) -> int:
    from recbackdoor.report.markdown import tables_command

    if args.asr_plot is not None and args.asr_plot.suffix != ".png":
        raise UserError(f"{args.asr_plot}: --asr-plot must name a .png file")
    return tables_command(args.results, args.asr_plot, args.title)


def _cmd_report(args: argparse.Namespace) -> int:
    from recbackdoor.report.html import report_command

    return report_command(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from recbackdoor.cache import StageCache
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


def _cmd_scan(args: argparse.Namespace) -> int:
    from recbackdoor.defenses.text.scan_command import scan_command

    return scan_command(args)


def _cmd_train_scanner(args: argparse.Namespace) -> int:
    from recbackdoor.defenses.text.train_command import train_scanner_command

    return train_scanner_command(args.config, args.out, args.pscanner, args.llm_only, args.student)


def _cmd_eval_scanner(args: argparse.Namespace) -> int:
    from recbackdoor.experiments.scanner_eval import run_evaluation

    path = run_evaluation(args.model, args.variant, args.out, args.sample, not args.no_families,
                          args.family_sample, args.seed, args.examples)
    print((args.out / "tables.md").read_text())
    print(f"wrote {path}")
    return 0


def _terminate_as_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt  # a `kill` unwinds like Ctrl-C, so temporary output files are removed


_COMMANDS = {"run": _cmd_run, "audit-extractor": _cmd_audit, "scan": _cmd_scan,
             "calibrate-scanner": calibrate_scanner_command,
             "train-scanner": _cmd_train_scanner, "eval-scanner": _cmd_eval_scanner, "report": _cmd_report,
             "tables": _cmd_tables}


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return _COMMANDS[args.command](args)
    except UserError as exc:
        print(f"recbackdoor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in ("scan", "report", "calibrate-scanner"):
            print("recbackdoor: interrupted; nothing was written at the output path", file=sys.stderr)
        else:
            print("recbackdoor: interrupted; finished stages are cached, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
