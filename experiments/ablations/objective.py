"""The training objective, a term or a setting at a time, scored at every Matryoshka dimension.

Variants (each the config's objective with one change, except the first two):

    contrastive        NCE with hardness-weighted hard negatives only (spread-out off)
    +spread_out        the config's objective: NCE + the spread-out regulariser
    +distillation      + embedding distillation from the released EmbeddingGemma (the teacher's
                       embeddings precomputed once into the corpus; a learned map 64 -> 768 at cpu scale)
    alpha=0            hard negatives unweighted (hard_negative_alpha 0 instead of 5)
    own_positive_out   the paper's denominator read literally (include_own_positive False)
    no_matryoshka      the loss at the full width only, still scored at every dim
"""

from __future__ import annotations

from pathlib import Path

from experiments.ablations import common
from experiments.grid import Ablation, Cell, Context, Teacher, Train

TEACHER_MAX_LENGTH = {"smoke": 64, "cpu": 64, "pod": 512}  # the tiny student reads at most 64 tokens


def variants(context: Context) -> dict[str, dict[str, object]]:
    full = common.SETTINGS[context.scale]["dims"][0]
    teacher_dim = 768 if context.scale != "smoke" else 0  # smoke's teacher is another tiny model
    return {
        "contrastive": {"loss.spread_out_weight": 0.0},
        "+spread_out": {},
        "+distillation": {"loss.distillation_weight": 1.0, "data.teacher": teacher_name(context),
                          "loss.teacher_dim": teacher_dim},
        "alpha=0": {"loss.hard_negative_alpha": 0.0},
        "own_positive_out": {"loss.include_own_positive": False},
        "no_matryoshka": {"loss.matryoshka_dims": (full,)},
    }


def teacher_name(context: Context) -> str:
    """What the teacher's embeddings are called in the corpus: its directory's name (as
    scripts/build_corpus.py --teacher names them, so an earlier precomputation is reused)."""
    return Path(context.teacher).name or "teacher"


def cells(context: Context) -> list[Cell]:
    out = []
    for seed in context.seeds:
        for name, overrides in variants(context).items():
            stages = []
            if "data.teacher" in overrides:
                stages.append(Teacher("teacher", context.corpus, context.teacher, teacher_name(context),
                                      TEACHER_MAX_LENGTH[context.scale]))
            stages.append(Train("train", common.config("finetune", context),
                                common.train_overrides(context, **common.steps(context, 300), **overrides)))
            out.append(Cell(name, seed, tuple(stages), common.evaluation(context, all_dims=True)))
    return out


ABLATION = Ablation(
    name="objective",
    question="What does each term of the objective buy: spread-out, distillation, hardness weighting, "
             "the own-positive denominator, the Matryoshka losses (scored at every dim)?",
    paper="The paper's recipe uses all of them (NCE with alpha 5, spread-out, embedding distillation, "
          "MRL); it reports no per-term ablation numbers, so this grid has no paper column.",
    cells=cells,
    plot="dims",
    inputs=("teacher",),
    # the one-change variants are read against the config's objective they change
    baselines={name: "+spread_out"
               for name in ("+distillation", "alpha=0", "own_positive_out", "no_matryoshka")},
)
