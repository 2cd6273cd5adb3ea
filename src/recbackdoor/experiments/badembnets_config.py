"""The badembnets experiment's config schema: the keys its TOML file may hold and their defaults.

Sections follow the pipeline: data, trigger, extractor (the attack's training), the two victims (VisRank,
VBPR) and the interaction simulator, the studies beyond the main tables, and the defenses.
"""

from __future__ import annotations

from typing import Literal

from recbackdoor.data.interactions import SimulatorSettings
from recbackdoor.experiments.config import ExperimentConfig, StrictModel
from recbackdoor.victims.vision.vbpr import VBPRSettings


class DataSection(StrictModel):
    source: Literal["fashion-mnist", "folder"] = "fashion-mnist"
    folder: str | None = None  # with source="folder": DIR/images/<category>/<item>.png + DIR/interactions.csv
    target_class: int = 7  # Sneaker (the paper's "Running shoes")
    heldout_classes: list[int] = [1, 8]  # Trouser, Bag: never seen by the extractor (cross-dataset analogue)
    train_per_class: int = 2000
    val_per_class: int = 250
    catalogue_per_class: int = 300
    cold_items: int = 1000
    transfer_items: int = 1000


class TriggerSection(StrictModel):
    pattern: str = "square"
    size: int = 3
    position: str = "br"
    value: float = 1.0


class ExtractorSection(StrictModel):
    arch: str = "alexnet"
    width: int = 32
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    poison_rate: float = 0.1
    alpha: float = 0.5
    beta: float = 0.5
    margin: float = 0.4
    mining: Literal["all", "random", "hard"] = "all"
    cosine: bool = True


class VisRankSection(StrictModel):
    query_share: float = 0.1


class VBPRSection(StrictModel):
    """Defaults are VBPRSettings' (one place); ``top_n`` is the HR@N cut-off of the evaluation."""

    k: int = VBPRSettings.k
    k_visual: int = VBPRSettings.k_visual
    epochs: int = VBPRSettings.epochs
    lr: float = VBPRSettings.lr
    reg: float = VBPRSettings.reg
    batch_size: int = VBPRSettings.batch_size
    top_n: int = 10


class SimulatorSection(StrictModel):
    """Defaults are SimulatorSettings' (one place); the seed comes from the run's seeds."""

    n_users: int = SimulatorSettings.n_users
    target_share: float = SimulatorSettings.target_share
    mean_interactions: float = SimulatorSettings.mean_interactions
    min_interactions: int = SimulatorSettings.min_interactions
    favourite_weight: float = SimulatorSettings.favourite_weight
    taste_concentration: float = SimulatorSettings.taste_concentration
    popularity_exponent: float = SimulatorSettings.popularity_exponent


class StudiesSection(StrictModel):
    transfer: bool = True
    random_position: bool = True
    patterns: list[str] = ["checker", "cross"]
    size_position: list[tuple[int, str]] = [(6, "br"), (3, "ct"), (6, "ct")]
    vbpr_dims: list[int] = [10, 30, 50, 100]
    tsne: bool = True
    tsne_per_group: int = 250


class DefenseSection(StrictModel):
    strip: bool = True
    strip_images: int = 400
    strip_overlays: int = 16
    strip_frr: float = 0.01
    ac: bool = True
    ac_max_share: float = 0.35
    ac_silhouette_margin: float = 0.1
    finetune: bool = True
    finetune_epochs: int = 5
    finetune_per_class: int = 1000
    finetune_lrs: list[float] = [1e-3, 1e-2]


class BadEmbNetsConfig(ExperimentConfig):
    experiment: str = "badembnets"
    threads: int = 1
    data: DataSection = DataSection()
    trigger: TriggerSection = TriggerSection()
    extractor: ExtractorSection = ExtractorSection()
    visrank: VisRankSection = VisRankSection()
    vbpr: VBPRSection = VBPRSection()
    simulator: SimulatorSection = SimulatorSection()
    studies: StudiesSection = StudiesSection()
    defenses: DefenseSection = DefenseSection()
