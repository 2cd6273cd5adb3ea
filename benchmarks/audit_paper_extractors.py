"""Do the six paper extractors keep their audit verdicts under the trigger-inversion audit?  (issue 26)

The paper configs (``configs/paper/badembnets_{alexnet,resnet}.toml``) train a clean, a BadNets and a
BadEmbNets extractor each, at a larger scale than the audit's calibration extractors (2,000 images per
class and 10 epochs against 400 and 6 / 18): they are extractors the calibration never saw. This script
trains exactly the extractors ``recbackdoor run`` trains (same function, same stage-cache key, so a run
of the paper config reuses them and vice versa), copies each out to a ``.safetensors`` file and audits it
with the user's command, ``recbackdoor audit-extractor --weights FILE --arch ARCH --out DIR``.

  RECBACKDOOR_DATA=/work/shared/data python benchmarks/audit_paper_extractors.py \
      --out docs/results/paper_extractor_audit [--only resnet-clean,...]

Cost on one core: training ≈ 5–7 min per extractor (cached), audit ≈ 3–5 min each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from recbackdoor.cache import StageCache
from recbackdoor.cli import main as cli_main
from recbackdoor.data.vision_splits import Splits, load_images
from recbackdoor.experiments.badembnets_experiment import VARIANTS, extractor_spec, get_extractor, make_trigger
from recbackdoor.experiments.config import load_config
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import config_model
from recbackdoor.victims.vision.extractors import save_extractor

ARCHS = ("alexnet", "resnet")
REPO = Path(__file__).resolve().parents[1]


def extractor_file(arch: str, variant: str, work: Path) -> Path:
    """Train (or take from the stage cache) the paper config's extractor and write it to ``work``."""
    cfg = load_config(REPO / "configs" / "paper" / f"badembnets_{arch}.toml", [], config_model)
    ctx = RunContext(out_dir=work, cache=StageCache())
    torch.set_num_threads(cfg.threads)
    train, test, _log, checksums = load_images(cfg.data)
    ctx.data_checksums.update(checksums)
    seed = cfg.seeds[0]
    splits = Splits(cfg.data, train, test, seed)
    model = get_extractor(cfg, ctx, train, splits, variant, make_trigger(cfg), seed)
    path = work / f"{arch}_{variant}.safetensors"
    save_extractor(model, extractor_spec(cfg, train), path, {"variant": variant})
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default=None, help="comma-separated ARCH-VARIANT names, e.g. resnet-clean")
    args = parser.parse_args(argv)
    names = [f"{a}-{v}" for a in ARCHS for v in VARIANTS]
    wanted = names if args.only is None else args.only.split(",")
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(names)}")
    work = args.out / "weights"
    work.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "summary.json"
    rows = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    try:
        for name in wanted:
            arch, variant = name.split("-")
            start = time.perf_counter()
            weights = extractor_file(arch, variant, work)
            trained = time.perf_counter() - start
            start = time.perf_counter()
            code = cli_main(["audit-extractor", "--weights", str(weights), "--arch", arch, "--out",
                             str(args.out / name), "--no-progress"])
            if code not in (0, 1):
                print(f"{name}: audit-extractor failed (exit {code})", file=sys.stderr)
                return code
            report = json.loads((args.out / name / "audit.json").read_text())
            rows[name] = {"arch": arch, "variant": variant, "exit": code, "verdict": report["verdict"],
                          "decided_by": report.get("decided_by"), "statistics": report.get("statistics"),
                          "recovered_target": report.get("recovered_target"),
                          "audit_seconds": time.perf_counter() - start, "extractor_seconds": trained}
            print(json.dumps({k: v for k, v in rows[name].items() if k != "statistics"}), flush=True)
            tmp = summary_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(rows, indent=1))
            tmp.replace(summary_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the weights are reproducible from the stage cache; never commit them
    return 0


if __name__ == "__main__":
    sys.exit(main())
