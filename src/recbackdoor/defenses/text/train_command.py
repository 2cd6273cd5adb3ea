"""``recbackdoor train-scanner``: P-Scanner (the LLM scanner), then the fast student distilled from it.

The P-Scanner run lives in its own folder (``--pscanner``, default
``OUT/pscanner``) and resumes round by round; the student is written to a
temporary folder beside ``OUT`` and renamed into place when it is complete,
so ``OUT`` is either a whole scanner or absent.
"""

from __future__ import annotations

import random
import shlex
import shutil
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from recbackdoor.defenses.text.pscanner import PScannerConfig, read_pool, train_pscanner
from recbackdoor.defenses.text.student_training import StudentConfig, train_student
from recbackdoor.defenses.text.unicode_channel import ChannelConfig
from recbackdoor.errors import UserError


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    examples: int = 0  # synthetic titles P-Scanner scores for the student to match; 0: hard labels only
    seed: int = 5


class ScannerTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pscanner: PScannerConfig = PScannerConfig()
    student: StudentConfig = StudentConfig()
    distill: DistillConfig = DistillConfig()
    channel: ChannelConfig = ChannelConfig()


def load_train_config(path: Path | None) -> ScannerTrainConfig:
    if path is None:
        return ScannerTrainConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return ScannerTrainConfig(**data)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: field {field!r}: {first['msg']}") from None


def teacher_scores(pscanner_dir: Path, pool, config: ScannerTrainConfig) -> tuple[list[str], np.ndarray]:
    """P-Scanner's scores on fresh synthetic titles (initial and agent triggers, benign): the distillation set."""
    from recbackdoor.defenses.text.llm_scanner import load_llm_scanner
    from recbackdoor.defenses.text.scanner_data import ExampleStream, netflix_split
    from recbackdoor.triggers.text_sampler import InitialTriggerSampler, lm_token_pool

    version = config.student.augmentation  # the distillation titles look like the student's benign ones
    suffix = "" if version == 1 else f"_aug{version}"  # version 1's name is the one files were saved under
    cache = pscanner_dir / f"teacher_{config.distill.examples}_{config.distill.seed}{suffix}.npz"
    if cache.exists():
        saved = np.load(cache, allow_pickle=False)
        return [str(t) for t in saved["titles"]], saved["scores"]
    scanner = load_llm_scanner(pscanner_dir / "adapter")
    sampler = InitialTriggerSampler(lm_token_pool(scanner.tokenizer))
    stream = ExampleStream(netflix_split(config.pscanner.seed).train, sampler, seed=config.distill.seed,
                           agent_pool=pool, augmentation=version)
    titles = [e.title for e in stream.batch(config.distill.examples, config.student.agent_share)]
    scores = scanner.score(titles, progress=True)
    np.savez(cache, titles=np.array(titles), scores=scores)
    return titles, scores


def train_scanner_command(config_path: Path | None, out: Path, pscanner_dir: Path | None,
                          llm_only: bool = False, student: str | None = None) -> int:
    config = load_train_config(config_path)
    if llm_only:  # P-Scanner alone into OUT (resumes round by round), e.g. the w/o TA ablation
        train_pscanner(config.pscanner, out)
        print(f"wrote {out} (P-Scanner)", file=sys.stderr)
        return 0
    if out.exists():
        raise UserError(f"{out}: already exists; give a new --out folder")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: output folder does not exist")
    command = "recbackdoor " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("recbackdoor") else ""
    if student is not None:  # an existing student: only the Unicode channel is trained and fused with it
        return _fuse_existing(config, student_folder(student), out, command)
    pscanner_dir = pscanner_dir or out.with_name(out.name + ".pscanner")
    if not (pscanner_dir / "scanner.json").exists():
        train_pscanner(config.pscanner, pscanner_dir)
    rounds = range(1, (config.student.pool_rounds or config.pscanner.rounds) + 1)
    pool = [t for r in rounds if (pscanner_dir / f"round_{r}" / "agent_pool.jsonl").exists()
            for t in read_pool(pscanner_dir / f"round_{r}" / "agent_pool.jsonl")]
    teacher = teacher_scores(pscanner_dir, pool, config) if config.distill.examples > 0 else None
    random.seed(config.student.seed)
    command = command or f"recbackdoor train-scanner --config {config_path} --out {out}"

    def build(tmp: Path) -> dict:
        record = train_student(config.student, tmp, agent_pool=pool, teacher=teacher, command=command)
        if config.channel.enabled:
            from recbackdoor.defenses.text.fused_training import build_fused

            record = build_fused(tmp, config.channel, tmp, config.student.target_fpr, config.student.seed, command)
        return record

    record = _write_atomically(out, build)
    print(f"wrote {out} ({record['kind']}, threshold {record['threshold']:.4f} at FPR {record['target_fpr']}; "
          f"P-Scanner in {pscanner_dir})", file=sys.stderr)
    return 0


def _write_atomically(out: Path, build: Callable[[Path], dict]) -> dict:
    """``build`` writes a scanner into a temporary folder beside ``out``, renamed into place only when it returns:
    ``out`` is either a whole scanner or absent."""
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        record = build(tmp)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def student_folder(where: str) -> Path:
    """The folder of a saved student (its own scanner, a fused one, or the package's: 'default')."""
    from recbackdoor.defenses.text.scanner import scanner_folder

    folder = scanner_folder(where)
    if not (folder / "student.safetensors").is_file():
        raise UserError(f"{folder}: no student.safetensors (not a student or fused scanner)")
    return folder


def _fuse_existing(config: ScannerTrainConfig, student: Path, out: Path, command: str) -> int:
    from recbackdoor.defenses.text.fused_training import build_fused

    command = command or f"recbackdoor train-scanner --student {student} --out {out}"
    record = _write_atomically(out, lambda tmp: build_fused(student, config.channel, tmp, config.student.target_fpr,
                                                            config.student.seed, command))
    print(f"wrote {out} (fused with the student of {student}, threshold {record['threshold']:.4f} at FPR "
          f"{record['target_fpr']})", file=sys.stderr)
    return 0
