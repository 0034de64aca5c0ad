"""Data: record sources, prompts and tokenisation, the weighted one-dataset-per-batch mixture
(config.py: the `data` section; pipeline.py: the grain pipelines; corpus/: the corpus builder;
ul2.py, ul2_config.py: UL2 denoising). Import the module you need: this package imports none, so
reading a config does not load grain."""
