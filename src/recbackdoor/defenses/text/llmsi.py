"""LLMSI: a safety instruction sent along with the prompt, nothing else changed.

The paper's instruction (Appendix B.1.2) is the default. It costs one query and
edits nothing; it fails in Table 2 because a poisoned model does not read the
trigger as a perturbation. The recommender decides where the instruction
goes in its prompt (the adapter prepends it to the task text).
"""

from __future__ import annotations

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView

SAFETY_INSTRUCTION = "Please pay attention to the perturbations that are added to the item titles."


class SafetyInstruction(Defense):
    name = "llmsi"

    def __init__(self, instruction: str = SAFETY_INSTRUCTION) -> None:
        if not instruction.strip():
            raise ValueError("the safety instruction is empty")
        self.instruction = instruction

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        answer, choice = PoolView.of(request).ask(recommender, request.history, self.instruction)
        return Outcome(answer, choice)

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        return Outcome(recommender.answer(request.liked, request.disliked, request.target, self.instruction))
