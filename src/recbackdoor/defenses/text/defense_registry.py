"""Every text defense by its results.json variant name: a new defense is one module plus one line here.

Constructors differ (a catalogue for STRIP, a paraphraser for RPD, a scanner
for P-Scanner), so ``make_defense`` passes keyword arguments straight to the
class; a misspelt argument is a ``TypeError`` naming it, never swallowed.
"""

from __future__ import annotations

from typing import Any

from recbackdoor.defenses.text.contract import DEFENSE_NAMES, Defense
from recbackdoor.defenses.text.cos import ChainOfScrutiny
from recbackdoor.defenses.text.llmsi import SafetyInstruction
from recbackdoor.defenses.text.onion_defense import OnionDefense
from recbackdoor.defenses.text.paraphraser import ParaphraseAll
from recbackdoor.defenses.text.pscanner_defense import PScannerDefense
from recbackdoor.defenses.text.rd import RandomDeletion
from recbackdoor.defenses.text.rpd import RPD
from recbackdoor.defenses.text.strip_defense import StripDefense
from recbackdoor.defenses.text.train_time_filter import TrainTimePScanner

DEFENSES: dict[str, type[Defense]] = {
    "rd": RandomDeletion,
    "llmsi": SafetyInstruction,
    "onion": OnionDefense,
    "strip": StripDefense,
    "rpd": RPD,
    "cos": ChainOfScrutiny,
    "paraphraser": ParaphraseAll,
    "p-scanner": PScannerDefense,
    "p-scanner-wo-ft": PScannerDefense,
    "p-scanner-wo-ta": PScannerDefense,
    "p-scanner-train-time": TrainTimePScanner,
    "p-scanner-recurrence": PScannerDefense,
    "p-scanner-recurrence-train-time": TrainTimePScanner,
    "p-scanner-label": PScannerDefense,
    "p-scanner-label-train-time": TrainTimePScanner,
}
assert tuple(DEFENSES) == DEFENSE_NAMES, "the registry and the results.json names must list the same defenses"


def make_defense(name: str, **parts: Any) -> Defense:
    """The defense named ``name`` built from ``parts`` (its constructor's keyword arguments)."""
    if name not in DEFENSES:
        from difflib import get_close_matches

        near = get_close_matches(name, DEFENSES, n=1)
        raise ValueError(f"unknown defense {name!r}" + (f"; did you mean {near[0]!r}?" if near else ""))
    cls = DEFENSES[name]
    if cls in (PScannerDefense, TrainTimePScanner):
        return cls(name=name, **parts)
    return cls(**parts)
