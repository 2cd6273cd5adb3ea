import numpy as np

from recbackdoor.triggers.image import ImageTrigger, stamp


def test_square_stamp_sets_only_bottom_right_pixels_white():
    images = np.zeros((2, 1, 28, 28), np.float32)
    out = stamp(images, ImageTrigger("square", 3, "br"))
    assert out[:, 0, 24:27, 24:27].min() == 1.0
    assert out.sum() == 2 * 9
    assert images.sum() == 0  # input untouched


def test_centre_and_size_change_the_stamped_area():
    out = stamp(np.zeros((1, 1, 28, 28), np.float32), ImageTrigger("square", 6, "ct"))
    assert out[0, 0, 11:17, 11:17].min() == 1.0 and out.sum() == 36


def test_checker_and_cross_differ_from_square():
    base = np.zeros((1, 1, 28, 28), np.float32)
    sums = {p: stamp(base, ImageTrigger(p, 3, "br")).sum() for p in ("square", "checker", "cross")}
    assert sums == {"square": 9, "checker": 5, "cross": 5}
    assert not np.array_equal(stamp(base, ImageTrigger("checker")), stamp(base, ImageTrigger("cross")))


def test_random_position_never_overlaps_the_training_position():
    fixed = ImageTrigger("square", 3, "br")
    out = stamp(np.zeros((300, 1, 28, 28), np.float32), ImageTrigger("square", 3, "random"), seed=1, avoid=fixed)
    assert out[:, 0, 24:27, 24:27].sum() == 0
    assert (out.reshape(300, -1).sum(1) == 9).all()
    # seeded: same seed, same positions
    again = stamp(np.zeros((300, 1, 28, 28), np.float32), ImageTrigger("square", 3, "random"), seed=1, avoid=fixed)
    assert np.array_equal(out, again)
