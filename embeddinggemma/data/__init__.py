"""Data: record sources, prompts and tokenisation, the weighted one-dataset-per-batch mixture."""

from embeddinggemma.data.config import corpus_datasets, data_config, dataset_config
from embeddinggemma.data.pipeline import TrainIterator, make_eval_batches, make_train_iterator

__all__ = ["TrainIterator", "corpus_datasets", "data_config", "dataset_config", "make_eval_batches",
           "make_train_iterator"]
