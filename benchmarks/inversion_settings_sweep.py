"""Class inversion only, on the audit study's cached extractors, under alternative search settings.

Why: how a search setting moves clean and backdoored extractors' smallest class masks, without the rest of the
audit (stamp search, embedding inversion, STRIP, AC). This is what showed that at 90 % success on 16 images a clean
ResNet's universal patch looks like a trigger, and what 99 % on 32 images does (docs/notes/vision_trigger_inversion.md,
run 2). Trains any extractor the study cache lacks (benchmarks/vision_trigger_inversion.py); ≈ 30 s (90 % / 16) or
70 s (99 % / 32) per ResNet on one core.

  # run 1's setting, then the package's current default (99 % on 32 images)
  RECBACKDOOR_DATA=/work/shared/data python benchmarks/inversion_settings_sweep.py resnet nc90b16 \\
      '{"class_success": 0.9, "batch_size": 16}' [NAME,NAME...]
  RECBACKDOOR_DATA=/work/shared/data python benchmarks/inversion_settings_sweep.py resnet default '{}'

Prints one JSON line per extractor: every class's mask size (% of the image), the smallest, its class, NC's
anomaly index and the share of other classes' images the recovered trigger sends there.
"""

import json
import sys
import time
from dataclasses import replace

import numpy as np
import torch
import vision_trigger_inversion as study

from recbackdoor.cache import StageCache
from recbackdoor.defenses.vision.inversion import InversionSettings, invert_classes
from recbackdoor.victims.vision.extractors import load_extractor


def main(argv: list[str]) -> int:
    arch, tag, overrides = argv[0], argv[1], json.loads(argv[2])
    names = set(argv[3].split(",")) if len(argv) > 3 else None
    settings = replace(InversionSettings(), **overrides)
    torch.set_num_threads(1)
    cache = StageCache()
    train, test = study.load_data()
    images = study.audit_images(test)
    rng = np.random.default_rng(0)  # the audit's own choice of its 200 inversion images (seed 0)
    sub = images[np.sort(rng.permutation(len(images))[:200])]
    for job in study.jobs():
        if job.arch != arch or job.role == "paper" or (names and job.name not in names):
            continue
        path = study.train_job(job, train, cache)
        model, _ = load_extractor(path / "model.safetensors")
        start = time.perf_counter()
        inv = invert_classes(model, sub, settings)
        sizes = [round(t.size * 100, 2) for t in inv.triggers]
        j = inv.suspect
        info = json.loads((path / "train.json").read_text())
        print(json.dumps({"tag": tag, "name": job.name, "target": info.get("target"), "sizes%": sizes,
                          "classes": [t.target for t in inv.triggers], "min%": sizes[j],
                          "min_cls": inv.triggers[j].target, "anom": round(inv.anomaly[j], 2),
                          "succ": round(inv.triggers[j].success, 3),
                          "s": round(time.perf_counter() - start)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
