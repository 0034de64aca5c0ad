"""How token vectors become one embedding: mean, first token, last token or attention pooling,
each trained the same way from the same start (`model.pooling`)."""

from __future__ import annotations

from experiments.ablations import common
from experiments.grid import Ablation, Cell, Context, Train

POOLINGS = ("mean", "first", "last", "attention")


def cells(context: Context) -> list[Cell]:
    def train(pooling: str) -> Train:
        overrides = common.train_overrides(context, **common.steps(context, 300),
                                           **{"model.pooling": pooling})
        return Train("train", common.config("finetune", context), overrides)

    return [Cell(pooling, seed, (train(pooling),), common.evaluation(context))
            for seed in context.seeds for pooling in POOLINGS]


ABLATION = Ablation(
    name="pooling",
    question="Does mean pooling beat first-token, last-token and attention pooling?",
    paper="MTEB(Multilingual) mean task: mean 60.4, first token 59.9, last token 59.7, attention 60.2 "
          "(mean best, attention close, the single-token poolings lowest).",
    cells=cells,
)
