"""A uniform soup of finetuning runs on different mixtures against each of its ingredients.

As the paper's recipe has it, the ingredients share a start: per seed, one pre-finetuning run
(`configs/prefinetune.py`: pairs, larger batches), then three finetuning runs from it that differ
only in their mixture of the corpus's datasets, then their uniform soup. The paper's mixtures came
from its Bayesian search (`python -m embeddinggemma mixture_search` here); these three are fixed
by hand (even, bitext-heavy, code-heavy) so the grid does not depend on a search's outcome.
"""

from __future__ import annotations

from experiments.ablations import common
from experiments.grid import Ablation, Cell, Context, Ref, Soup, Train

MIXTURES = {
    "mix-even": {"bitext": 1 / 3, "code": 1 / 3, "package_metadata": 1 / 3},
    "mix-bitext": {"bitext": 0.6, "code": 0.2, "package_metadata": 0.2},
    "mix-code": {"bitext": 0.2, "code": 0.6, "package_metadata": 0.2},
}


def cells(context: Context) -> list[Cell]:
    out = []
    for seed in context.seeds:
        start = Cell("prefinetuned", seed,
                     (Train("train", common.config("prefinetune", context),
                            common.train_overrides(context, **common.steps(context, 200))),),
                     common.evaluation(context))
        out.append(start)
        for name, mixture in MIXTURES.items():
            overrides = common.train_overrides(context, **common.steps(context, 200),
                                               **{"model.init": "embedder",
                                                  "model.init_checkpoint": Ref("train", start.name)})
            out.append(Cell(name, seed, (Train("train", common.config("finetune", context), overrides,
                                               mixture=mixture),),
                            common.evaluation(context)))
        ingredients = tuple(Ref("train", f"{name}/seed{seed}") for name in MIXTURES)
        out.append(Cell("soup", seed, (Soup("soup", ingredients),), common.evaluation(context, "soup")))
    return out


ABLATION = Ablation(
    name="souping",
    question="Does the uniform soup of runs finetuned on different mixtures beat each of them?",
    paper="MTEB(Multilingual) mean task / mean type: soup 61.2 / 54.3 against its ingredients "
          "60.4 / 53.4, 60.4 / 53.6, 60.1 / 53.3 (the soup above every ingredient).",
    cells=cells,
)
