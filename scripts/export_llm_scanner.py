"""Make a loadable scanner folder from a P-Scanner round's LoRA adapter, or from none (the w/o FT ablation).

    python scripts/export_llm_scanner.py --adapter runs/pscanner_full/round_1/scanner --out runs/pscanner_round1
    python scripts/export_llm_scanner.py --adapter none --out runs/pscanner_wo_ft

The threshold is calibrated on the held-out Netflix calibration titles, as for the full P-Scanner.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recbackdoor.defenses.text.pscanner import export_llm_scanner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="a saved LoRA adapter folder, or 'none' for the untuned LM")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calibration-titles", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    adapter = None if args.adapter == "none" else Path(args.adapter)
    meta = export_llm_scanner(adapter, args.out, calibration_titles=args.calibration_titles, threads=args.threads)
    print(f"wrote {args.out}: threshold {meta['threshold']:.4f}")


if __name__ == "__main__":
    main()
