"""Fixtures the QAT tests share: the digits CNN, a variant PTQ breaks, and one QAT run of it.

The model PTQ breaks: the demo CNN trained on scikit-learn's digits, with two channels of the tensor that
feeds `conv2` scaled up 300x (and `conv2`'s weights for them scaled down 300x, so FP32 is unchanged). One
per-tensor int8 scale must then cover a range 300x wider than the other 30 channels need: with the minmax
range they all round to zero and PTQ falls to chance, while fine-tuning through the quantizers recovers.

The fixtures are package-scoped: the run (`outlier_run`) is made once for every module here.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.finetune.helpers import HAS_TYPED, OUTLIER_SCALE, RUN


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """One PyTorch thread: these tiny models run fastest (and exactly reproducibly) that way on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo CNN trained on digits (seed 0), its train/val split as .npz, and the outlier variant."""
    from trtq.demo import _digits_uint8, _normalise, train_digits

    model, acc, _, _ = train_digits(0, epochs=6)
    imgs, labels = _digits_uint8()
    order = np.random.default_rng(0).permutation(len(imgs))  # train_digits' split
    root = tmp_path_factory.mktemp("qat_digits")
    np.savez(root / "train.npz", x=_normalise(imgs[order[:1200]]), y=labels[order[:1200]])
    np.savez(root / "val.npz", x=_normalise(imgs[order[1200:]]), y=labels[order[1200:]])
    outlier = copy.deepcopy(model)
    with torch.no_grad():
        bn, conv2 = outlier.conv1[1], outlier.conv2[0]
        for k in range(2):
            bn.weight[k] *= OUTLIER_SCALE
            bn.bias[k] *= OUTLIER_SCALE
            conv2.weight[:, k] /= OUTLIER_SCALE
    sd = root / "outlier.pt"
    torch.save(outlier.state_dict(), str(sd))
    return {
        "model": model,
        "outlier": outlier,
        "outlier_sd": sd,
        "fp32_acc": acc,
        "train": root / "train.npz",
        "val": root / "val.npz",
    }


@pytest.fixture(scope="package")
def outlier_run(digits: dict, tmp_path_factory: pytest.TempPathFactory):
    """`trtq.qat` on the outlier model with `RUN`'s settings, handed off to the build path."""
    import trtq

    out = tmp_path_factory.mktemp("qat_run") / "qat"
    return trtq.qat(
        digits["outlier"], str(digits["train"]), str(digits["val"]), out,
        typed_graph=HAS_TYPED, **RUN,
    )  # fmt: skip
