"""Full precision against int8-block, int4-block and mixed, quantised after training (PTQ) and
after a short quantisation-aware finetune (QAT), with the control the QAT claim needs.

Per seed: `float32` trains the model; `ptq/<scheme>` quantises it (`python -m
embeddinggemma quantize`: an integer checkpoint, evaluated from its integers); `control` finetunes
it for a further third of its steps in float32, and `control/<scheme>` quantises that; `qat/<scheme>`
finetunes it for the same steps on the same data with `quant.scheme=<scheme>` and quantises the
result. `qat/<scheme>` against `control/<scheme>` is what QAT buys beyond the extra training.
"""

from __future__ import annotations

from experiments.ablations import common
from experiments.grid import Ablation, Cell, Context, Quantize, Ref, Train

SCHEMES = ("int8-block", "int4-block", "mixed")


def cells(context: Context) -> list[Cell]:
    out = []
    for seed in context.seeds:
        base = Cell("float32", seed, (Train("train", common.config("finetune", context),
                                            common.train_overrides(context, **common.steps(context, 300))),),
                    common.evaluation(context))
        out.append(base)
        out += [Cell(f"ptq/{scheme}", seed, (Quantize("quantized", Ref("train", base.name), scheme),),
                     common.evaluation(context, "quantized")) for scheme in SCHEMES]

        def finetune(scheme: str, start: str = base.name) -> Train:
            overrides = {**common.steps(context, 100), "model.init": "embedder",
                         "model.init_checkpoint": Ref("train", start), "quant.scheme": scheme}
            return Train("train", common.config("finetune", context),
                         common.train_overrides(context, **overrides))

        control = Cell("control", seed, (finetune("none"),), common.evaluation(context))
        out.append(control)
        out += [Cell(f"control/{scheme}", seed, (Quantize("quantized", Ref("train", control.name), scheme),),
                     common.evaluation(context, "quantized")) for scheme in SCHEMES]
        out += [Cell(f"qat/{scheme}", seed, (finetune(scheme), Quantize("quantized", Ref("train"), scheme)),
                     common.evaluation(context, "quantized")) for scheme in SCHEMES]
    return out


ABLATION = Ablation(
    name="quantisation",
    question="How much does each quantisation scheme cost after training, and how much of it does a "
             "short quantisation-aware finetune win back beyond the same finetune in float32?",
    paper="MTEB(Multilingual) mean task: float 61.15; QAT int8-block 60.93, int4-block 60.62, mixed 60.69 "
          "(int8 within 0.25, int4 and mixed within 0.55 of float).",
    cells=cells,
    # QAT against the same finetune in float32 quantised the same way: what QAT itself buys.
    baselines={**{f"qat/{s}": f"control/{s}" for s in SCHEMES},
               **{f"control/{s}": "control" for s in SCHEMES}},
)
