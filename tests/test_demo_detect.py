"""The detection demo's scenes, detector and training: deterministic, held-out digits, a v8-style output."""

from __future__ import annotations

import numpy as np
import torch

from trtq.demo_detect import (
    NUM_CLASSES,
    SCENE_SIZE,
    DigitsDetector,
    TrainSettings,
    detector_loss,
    make_scenes,
    scenes_tensor,
    train_detector,
)


def test_scenes_are_the_same_for_the_same_seed_and_boxes_lie_inside():
    a, b = make_scenes(20, seed=3), make_scenes(20, seed=3)
    assert np.array_equal(a.images, b.images) and a.images.shape == (20, SCENE_SIZE, SCENE_SIZE, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not np.array_equal(a.images, make_scenes(20, seed=4).images)
    for boxes, labels in zip(a.boxes, a.labels):
        assert 1 <= len(boxes) <= 4 and len(boxes) == len(labels)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= SCENE_SIZE).all()
        assert (boxes[:, 2:] - boxes[:, :2] >= 4).all() and ((0 <= labels) & (labels < NUM_CLASSES)).all()


def test_each_box_is_tight_around_bright_ink():
    s = make_scenes(10, seed=0)
    for image, boxes in zip(s.images, s.boxes):
        grey = image.max(axis=2)
        for x1, y1, x2, y2 in boxes.astype(int):
            inside = grey[y1:y2, x1:x2]
            assert inside.max() > 140  # the digit's ink is in the box
            assert inside[0].max() > 70 or inside[:, 0].max() > 70  # and touches its top or left edge


def test_held_out_scenes_use_digits_training_never_shows(monkeypatch):
    from sklearn.datasets import load_digits

    import trtq.demo_detect as dd

    digits = (load_digits().images / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(digits))
    pasted: list[np.ndarray] = []
    resize = dd._resize
    monkeypatch.setattr(dd, "_resize", lambda digit, side: pasted.append(digit) or resize(digit, side))

    def which(imgs: list[np.ndarray]) -> set[int]:
        flat = digits.reshape(len(digits), -1)
        return {int(np.flatnonzero((flat == d.reshape(-1)).all(1))[0]) for d in imgs}

    dd.make_scenes(30)
    train = which(pasted)
    pasted.clear()
    dd.make_scenes(30, held_out=True)
    held = which(pasted)
    # digit images can repeat in the data set: compare pixels, not indices
    train_px = {digits[i].tobytes() for i in order[:1200]}
    assert all(digits[i].tobytes() in train_px for i in train)
    assert all(digits[i].tobytes() in {digits[j].tobytes() for j in order[1200:]} for i in held)
    assert len(train) > 20 and len(held) > 20


def test_the_output_is_boxes_in_pixels_then_sigmoid_scores_decoded_from_the_raw_branches():
    torch.manual_seed(0)
    m = DigitsDetector().eval()
    x = scenes_tensor(make_scenes(2).images)
    with torch.no_grad():
        out = m(x)
        dist, logits = m.raw(x)
    anchors = (SCENE_SIZE // 8) ** 2 + (SCENE_SIZE // 16) ** 2
    assert out.shape == (2, 4 + NUM_CLASSES, anchors) and dist.shape == (2, 4, anchors)
    assert torch.allclose(out[:, 4:], torch.sigmoid(logits))
    # cx, cy, w, h from the anchor centre and the distances to the four sides (numpy reference)
    a = m.anchors[0].numpy()
    d = dist.numpy()
    x1, y1, x2, y2 = a[0] - d[:, 0], a[1] - d[:, 1], a[0] + d[:, 2], a[1] + d[:, 3]
    ref = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
    np.testing.assert_allclose(out[:, :4].numpy(), ref, rtol=1e-5, atol=1e-4)
    assert a[0, 0] == 4.0 and a[0, -1] == SCENE_SIZE - 8.0  # centres of the stride-8 and stride-16 cells


def test_the_loss_is_finite_and_trains_the_box_and_class_branches():
    torch.manual_seed(0)
    m = DigitsDetector()
    s = make_scenes(4)
    loss = detector_loss(m, scenes_tensor(s.images), [torch.from_numpy(b) for b in s.boxes],
                         [torch.from_numpy(v) for v in s.labels])  # fmt: skip
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert m.box[0][1].weight.grad.abs().sum() > 0 and m.cls[1][1].weight.grad.abs().sum() > 0


def test_training_is_bitwise_deterministic_and_restores_torch_settings():
    settings = TrainSettings(scenes=16, epochs=1, batch=8)
    threads = torch.get_num_threads()
    calls = []
    a, _ = train_detector(settings, progress=lambda done, total: calls.append((done, total)))
    b, _ = train_detector(settings)
    assert calls == [(1, 2), (2, 2)] and not a.training
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    c, _ = train_detector(TrainSettings(scenes=16, epochs=1, batch=8, seed=1))
    assert not torch.equal(c.stem[0].weight, a.stem[0].weight)
    assert settings.key() == "s16-e1-b8-lr0.004-seed0"
