"""The released model exported to ONNX (f32): ONNX Runtime embeds the golden texts as
sentence-transformers does (tests/golden, scripts/make_golden.py), and transformers.js in Node
tokenises and embeds prompted texts in several scripts as ONNX Runtime and SentencePiece do.
One export (about a minute) serves both tests."""

import pytest

from tests.checkpoint.test_onnx_export import TEXTS, check_against_onnx_runtime, run_transformers_js
from tests.test_parity import RECORDS, REFERENCE

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")

from embeddinggemma.checkpoint.loading import load_checkpoint  # noqa: E402
from embeddinggemma.checkpoint.onnx_export import MODEL_FILES, export_onnx  # noqa: E402

pytestmark = [pytest.mark.release, pytest.mark.slow]


@pytest.fixture(scope="module")
def release_onnx(release_dir, tmp_path_factory):
    ckpt = load_checkpoint(release_dir)
    out = tmp_path_factory.mktemp("release-onnx") / "embeddinggemma-300m-onnx"
    export_onnx(out, ckpt.config, ckpt.params, ckpt.tokenizer_path, ckpt.prompts, "f32")
    del ckpt
    return out


def test_onnx_runtime_embeds_the_golden_texts(release_onnx):
    import numpy as np

    session = ort.InferenceSession(str(release_onnx / "onnx" / MODEL_FILES["f32"]),
                                   providers=["CPUExecutionProvider"])
    cosines = []
    for record, reference in zip(RECORDS, REFERENCE, strict=True):
        ids = np.array([record["token_ids"]], np.int64)
        _, embedding = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        cosines.append(float(embedding[0] @ reference))
    assert min(cosines) >= 0.99999, min(cosines)


def test_transformers_js_agrees_with_onnx_runtime(release_onnx, release_dir, tmp_path):
    js = run_transformers_js(release_onnx, TEXTS, tmp_path)
    check_against_onnx_runtime(release_onnx, "f32", release_dir / "tokenizer.model", TEXTS, js,
                               max_length=2048)
