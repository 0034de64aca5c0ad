import numpy as np

from embeddinggemma.model.masks import attention_mask


def _mask(valid, **kwargs):
    return np.asarray(attention_mask(np.array([valid], bool), **kwargs)[0]).astype(int)


def test_bidirectional_window_is_symmetric_and_hides_padding():
    got = _mask([1, 1, 1, 1, 0], bidirectional=True, window=1)
    want = np.array([
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 0],
    ])
    np.testing.assert_array_equal(got, want)


def test_global_bidirectional_sees_every_real_token():
    got = _mask([1, 1, 1, 0], bidirectional=True)
    np.testing.assert_array_equal(got, np.array([[1, 1, 1, 0]] * 4))


def test_causal_window():
    got = _mask([1, 1, 1, 1], bidirectional=False, window=1)
    want = np.array([
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ])
    np.testing.assert_array_equal(got, want)
