"""The registry of ablations: one module per finding of the paper, each defining `ABLATION`."""

from experiments.ablations import init, objective, pooling, quantisation, souping

ABLATIONS = {a.name: a for a in (init.ABLATION, pooling.ABLATION, objective.ABLATION, souping.ABLATION,
                                 quantisation.ABLATION)}
