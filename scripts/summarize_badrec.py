"""Print a Table-1-shaped markdown summary of BadRec results.json files (for docs/results.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarize(path: Path) -> str:
    res = json.loads(path.read_text())
    cells = res["cells"]
    lines = []
    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    for ds in datasets:
        mine = [c for c in cells if c["dataset"] == ds]
        victim = mine[0]["victim"]
        if victim == "tallrec":
            head = "| model | trigger | position | AUC | ASR (flip No→Yes) | n_no | AUC with trigger |"
            lines += [f"**{ds} / {victim}**", "", head, "|---|---|---|---|---|---|---|"]
            for c in mine:
                m, e = c["metrics"], c.get("extra", {})
                asr = f"{m['asr']:.3f}" if "asr" in m else "undefined"
                lines.append(f"| {c['variant']} | {c['trigger']} | {c['position']} | {m['auc']:.3f} | {asr} | "
                             f"{e.get('n_no', '')} | {m.get('auc_triggered', float('nan')):.3f} |")
        else:
            head = "| model | trigger | position | Valid | H@1 (valid) | H@1 (all) | A-Valid | ASR |"
            lines += [f"**{ds} / {victim}**", "", head, "|---|---|---|---|---|---|---|---|"]
            for c in mine:
                m = c["metrics"]
                def f(k: str, m: dict = m) -> str:
                    return f"{m[k]:.3f}" if k in m else "/"

                lines.append(f"| {c['variant']} | {c['trigger']} | {c['position']} | {f('valid')} | {f('h1')} | "
                             f"{f('h1_all')} | {f('a_valid')} | {f('asr')} |")
        lines.append("")
    t = res["timings"]
    lines.append(f"Wall time {t['total'] / 60:.1f} min; machine {res['machine']}.")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2 or any(a.startswith("-") for a in sys.argv[1:]):
        sys.exit("usage: python scripts/summarize_badrec.py RESULTS.json [RESULTS.json ...]")
    for arg in sys.argv[1:]:
        if not Path(arg).is_file():
            sys.exit(f"{arg}: no such results file")
        print(summarize(Path(arg)))
