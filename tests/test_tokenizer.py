import numpy as np
import pytest

from embeddinggemma.tokenizer import Tokenizer, pad_batch


def test_bos_pieces_eos_and_truncation_keeps_both_ends(tiny_tokenizer_path):
    tokenizer = Tokenizer(tiny_tokenizer_path)
    text = "This License applies to any program or other work"
    pieces = tokenizer.processor.encode(text)
    assert tokenizer.encode([text], 100) == [[2] + pieces + [1]]
    assert tokenizer.encode([text], 5) == [[2] + pieces[:3] + [1]]
    assert tokenizer.encode([""], 10) == [[2, 1]]
    with pytest.raises(ValueError, match="max_length=1"):
        tokenizer.encode([text], 1)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.model"):
        Tokenizer(tmp_path / "nothing.model")


def test_pad_batch_right_pads():
    np.testing.assert_array_equal(pad_batch([[2, 5, 1], [2, 1]], 4),
                                  [[2, 5, 1, 0], [2, 1, 0, 0]])
    with pytest.raises(ValueError, match="Sequence 0 has 3 tokens"):
        pad_batch([[2, 5, 1]], 2)
