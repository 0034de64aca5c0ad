"""Shared fixtures: a tiny random model with its own SentencePiece vocabulary, a small real corpus,
and the release."""

from __future__ import annotations

import os
from pathlib import Path

# Eight simulated CPU devices for the sharding tests; set before JAX starts its backend.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
# One CPU kernel library for the whole suite, not a choice each test worker measures under the
# load of the others (embeddinggemma/cpu_kernels.py): XLA's own, what "auto" picks on this
# project's AMD machines. tests/test_cpu_kernels.py and the parity tests cover both.
os.environ.setdefault("EMBEDDINGGEMMA_CPU_KERNELS", "xla")
# The suite runs on the CPU. With libtpu installed (the `tpu` extra, for the plan tests' compile-only
# TPU devices, which JAX_PLATFORMS does not hide) JAX would otherwise try a TPU backend first in
# every process and print libtpu's warnings when none is attached.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from embeddinggemma.model import init_params, tiny  # noqa: E402

# Text to train the tiny tokenizer on: any real English prose on the machine will do.
TOKENIZER_TEXT = Path("/usr/share/common-licenses/GPL-3")


@pytest.fixture(scope="session")
def tiny_tokenizer_path(tmp_path_factory) -> Path:
    """A 400-piece SentencePiece model with Gemma's special ids (pad 0, eos 1, bos 2, unk 3)."""
    import sentencepiece as spm

    out = tmp_path_factory.mktemp("tokenizer")
    spm.SentencePieceTrainer.train(
        input=str(TOKENIZER_TEXT), model_prefix=str(out / "tiny"), vocab_size=400,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, model_type="bpe",
        num_threads=1, minloglevel=2)
    return out / "tiny.model"


@pytest.fixture(scope="session")
def tiny_config():
    return tiny()


@pytest.fixture(scope="session")
def tiny_params(tiny_config):
    params = jax.device_get(init_params(tiny_config, jax.random.PRNGKey(0)))
    rng = np.random.default_rng(0)
    # Norm scales start at zero; random ones make a mix-up of norms visible in the output.
    return jax.tree_util.tree_map_with_path(
        lambda path, x: rng.normal(0.0, 0.3, x.shape).astype(np.float32)
        if path[-1].key == "scale" else x, params)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """About 300 real training pairs over three datasets (the corpus builder, 120 pairs each); for
    the training runs of tests/training and the mixture search's."""
    from embeddinggemma.data.corpus.build import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "corpus"
    build_corpus(out, max_pairs=120)
    return out


@pytest.fixture(scope="session")
def release_dir() -> Path:
    """The released checkpoint, fetched (or found in the cache); a failure says so plainly."""
    from embeddinggemma.artefacts import FetchError, fetch_release

    try:
        return fetch_release()
    except FetchError as e:
        if os.environ.get("EMBEDDINGGEMMA_SKIP_RELEASE"):
            pytest.skip(f"released checkpoint unavailable: {e}")
        pytest.fail(f"Could not fetch the released EmbeddingGemma checkpoint, so the parity tests "
                    f"cannot run: {e}", pytrace=False)


GCS_BUCKET = "embeddinggemma-test"


@pytest.fixture(scope="session")
def gcs_emulator():
    """A GCS emulator (gcp-storage-emulator, the `test` extra; see tests/gcs_emulator.py) on a free
    localhost port for the session, holding the bucket GCS_BUCKET, with every client of this process
    and of the processes it starts pointed at it: gcsfs and google-cloud-storage by
    STORAGE_EMULATOR_HOST, TensorStore (under Orbax) by TENSORSTORE_GCS_HTTP_URL. Yields its address.

    Set before this process opens its first gs:// path: gcsfs reads the address when it makes its
    filesystem, which epath then keeps.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    import portpicker

    port = portpicker.pick_unused_port()
    address = f"http://localhost:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.gcs_emulator", str(port), GCS_BUCKET],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{address}/storage/v1/b/{GCS_BUCKET}", timeout=1)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"The GCS emulator did not start on port {port}.", pytrace=False)
            time.sleep(0.1)
    # gcsfs's default filesystem first asks the bucket's layout of a control API the emulator lacks.
    settings = {"STORAGE_EMULATOR_HOST": address, "TENSORSTORE_GCS_HTTP_URL": address,
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield address
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def gcs_dir(gcs_emulator, request):
    """A fresh prefix of the emulator's bucket for one test: `gs://BUCKET/<test name>-<n>`."""
    import uuid

    from etils import epath

    return epath.Path(f"gs://{GCS_BUCKET}/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}")
