"""Package definition for embeddinggemma.

Lower bounds are the versions this code was tested with. torch stays out of the runtime
dependencies: only the `reference` (golden files, benchmarks) and `eval` extras need it.
"""

from setuptools import find_namespace_packages, setup

RUNTIME = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12.8",
    "etils[epath]>=1.15.0",  # paths.py: a gs:// URL as a path (Orbax's own path type)
    "grain>=0.2.18",
    "sentencepiece>=0.2.3",
    "ml_collections>=1.1.0",
    "tensorflow-datasets>=4.9.10",
    "safetensors>=0.8.0",
    "tokenizers>=0.23.3",  # the tokenizer.json of a sentence-transformers export
    "numpy>=2.0",
    "tqdm>=4.66",
    "absl-py>=2.0",
    "bm25s>=0.3.16",  # hard-negative mining in the corpus builder
    "tensorboardX>=2.6.5",  # TensorBoard event files without TensorFlow
    # The evaluation suite: the metric libraries MTEB uses, and plots.
    "pytrec-eval-terrier>=0.5.11",
    "scikit-learn>=1.5",
    "matplotlib>=3.8",
    "optuna>=5.0",  # the mixture search: TPE, journal storage
    "gguf>=0.19.0",  # GGUF files: the Gemma 3 decoder importer, the quantisers' reference grids
]

# Work directories, checkpoints and data in a bucket (`gs://`, embeddinggemma/paths.py): gcsfs is
# epath's client for it (through fsspec), google-cloud-storage tensorboardX's.
GCS = ["gcsfs>=2026.10.1", "google-cloud-storage>=3.17.1"]

REFERENCE = [
    # The CPU build that these machines hold on local disk; a bare `torch` pulls a CUDA build.
    "torch==2.13.0",
    "transformers>=4.57",
    "sentence-transformers>=5.1",
    "accelerate>=1.15",  # transformers' GGUF loader (scripts/make_golden_decoder.py) needs it
]

setup(
    name="embeddinggemma",
    version="0.1.0",
    description="JAX/Flax reproduction of the EmbeddingGemma training recipe and model.",
    python_requires=">=3.11",
    # find_namespace_packages: a folder without __init__.py is still shipped (find_packages once
    # left training/ out of the wheel); CI installs the wheel and imports every module.
    packages=find_namespace_packages(include=["embeddinggemma", "embeddinggemma.*"],
                                     exclude=["*.__pycache__"]),
    package_data={"embeddinggemma": ["data/corpus/*.lock", "checkpoint/templates/*.md"]},
    entry_points={"console_scripts": ["embeddinggemma = embeddinggemma.cli:console_main"]},
    install_requires=RUNTIME,
    extras_require={
        # tensorboard reads the event files back.
        # pytest-xdist: the suite runs in two worker processes (most tests are single-threaded
        # compilation and Python, so two cores finish it sooner).
        # gcp-storage-emulator: the GCS server the bucket tests start on localhost (tests/conftest.py).
        "test": ["pytest>=8.0", "pytest-xdist>=3.8", "ruff>=0.6", "tensorboard>=2.21",
                 "gcp-storage-emulator>=2026.7.19", "portpicker>=1.6.0", *GCS],
        "gcs": GCS,
        "reference": REFERENCE,
        # The ONNX export (onnx) and its checks and benchmark (ONNX Runtime). jax2onnx is not used:
        # 0.17 pins orbax-checkpoint<0.11.37, below RUNTIME's (README, "ONNX").
        "onnx": ["onnx>=1.23.2", "onnxruntime>=1.32.0"],
        # mteb itself (the adapter and its test); it needs torch, so install torch==2.13.0 first.
        "eval": REFERENCE + ["mteb>=2.26"],
        # libtpu, the TPU compiler and runtime: `python -m embeddinggemma plan` compiles for TPU slices
        # on any machine with it, and a TPU VM runs on it. jax's own `tpu` extra names the libtpu
        # built for the installed jax (libtpu 0.0.42.* for jax 0.10.2), so the two always match.
        "tpu": ["jax[tpu]>=0.10.2"],  # a pod slice's runs live in a bucket: install `gcs` with it
        # llama.cpp itself, compiled from source (22 min on 2 loaded cores), for
        # scripts/compare_llama_cpp.py: it runs the GGUF export; never needed by the package.
        "llama-cpp": ["llama-cpp-python>=0.3.36"],
    },
)
