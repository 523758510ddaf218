import numpy as np
import pytest

from flowrvs.eval import metrics
from flowrvs.eval.metrics import (
    boundary_map,
    contour_accuracy,
    disk,
    region_similarity,
    score_expression,
    tolerance_radius,
)


def square(shift=0, size=30):
    """10x10 square at rows 5..14, cols 5+shift..14+shift."""
    m = np.zeros((size, size), dtype=np.uint8)
    m[5:15, 5 + shift : 15 + shift] = 1
    return m


# --- J ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 1, 2, 5, 9, 10])
def test_j_shifted_square(k):
    # Square of 100 px vs the same square shifted right by k (k <= 10): the overlap is 10 rows of
    # (10-k) columns = 10(10-k); the union is 100 + 100 - 10(10-k) = 10(10+k). J = (10-k)/(10+k).
    j = region_similarity(square(k), square(0))
    assert j.shape == (1,)
    assert j[0] == pytest.approx((10 - k) / (10 + k))


def test_j_empty_cases_and_dtypes():
    empty = np.zeros((2, 8, 8), dtype=np.uint8)
    full = np.full((2, 8, 8), 255, dtype=np.uint8)
    np.testing.assert_array_equal(region_similarity(empty, empty), [1, 1])  # both empty -> 1
    np.testing.assert_array_equal(region_similarity(empty, full), [0, 0])  # 0 / 64
    np.testing.assert_array_equal(region_similarity(full, full.astype(bool)), [1, 1])
    # any dtype, nonzero = foreground: 0.5 and -1 count as fg
    a = np.array([[0.5, 0.0], [-1.0, 0.0]])
    b = np.array([[True, True], [False, False]])
    assert region_similarity(a, b)[0] == pytest.approx(1 / 3)  # overlap 1, union 3


def test_j_per_frame_and_shape_errors():
    gt = np.stack([square(0), square(0), np.zeros((30, 30), np.uint8)])
    pred = np.stack([square(0), square(5), np.zeros((30, 30), np.uint8)])
    # frame 0 identical (1), frame 1 shift 5 -> 5/15, frame 2 both empty (1)
    np.testing.assert_allclose(region_similarity(pred, gt), [1, 1 / 3, 1])
    with pytest.raises(ValueError):
        region_similarity(pred, gt[:2])
    with pytest.raises(ValueError):
        region_similarity(pred[0], gt)  # (H, W) vs (T, H, W)
    with pytest.raises(ValueError):
        region_similarity(np.zeros(5), np.zeros(5))


def test_hw_equals_1hw():
    a, b = square(3), square(0)
    for fn in (region_similarity, contour_accuracy):
        single = fn(a, b)
        stacked = fn(a[None], b[None])
        assert single.shape == (1,) and stacked.shape == (1,)
        np.testing.assert_array_equal(single, stacked)


# --- boundary map and F ------------------------------------------------------------------
def test_boundary_of_square_is_outline_of_box_up_left():
    # The 10x10 square at [5..14]x[5..14]: interior pixels (row<14, col<14) equal their E, S, SE
    # neighbours; the square's last row 14 and last col 14 differ from the background below/right;
    # background row 4 (cols 4..14) and col 4 (rows 4..14) differ from the square via S/E/SE.
    # So the map is the outline of the 11x11 box [4..14]x[4..14]: 4*11 - 4 = 40 pixels.
    b = boundary_map(square(0))
    expected = np.zeros((30, 30), bool)
    expected[4:15, 4:15] = True
    expected[5:14, 5:14] = False
    np.testing.assert_array_equal(b, expected)
    assert b.sum() == 40


def test_full_frame_has_no_boundary():
    # a full frame has no boundary (DAVIS quirk): full vs full and full vs empty both give F = 1
    full = np.ones((6, 7), bool)
    assert not boundary_map(full).any()
    assert contour_accuracy(full, np.zeros_like(full))[0] == 1.0


def test_disk_and_radius():
    np.testing.assert_array_equal(disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert disk(12).shape == (25, 25) and disk(12)[0, 12] == 1 and disk(12)[0, 11] == 0
    assert disk(2.5).shape == (5, 5) and disk(2.5)[0, 1] == 1  # 1 + 4 <= 6.25
    assert tolerance_radius(0.008, (720, 1280)) == 12  # ceil(0.008 * 1468.6) = ceil(11.75)
    assert tolerance_radius(0.008, (30, 30)) == 1  # ceil(0.008 * 42.4) = ceil(0.34)
    assert tolerance_radius(3, (30, 30)) == 3
    with pytest.raises(ValueError):
        tolerance_radius(0, (30, 30))


def test_f_identical_and_empty():
    sq = square(0)
    assert contour_accuracy(sq, sq)[0] == 1.0
    e = np.zeros_like(sq)
    assert contour_accuracy(e, e)[0] == 1.0  # neither has a boundary
    assert contour_accuracy(e, sq)[0] == 0.0  # exactly one has
    assert contour_accuracy(sq, e)[0] == 0.0


def test_f_shifted_square_on_paper():
    # Boundaries: B_G = outline of box rows 4..14, cols 4..14 (40 px); B_P (shift 2) = outline of
    # box rows 4..14, cols 6..16. Radius 1 = plus-shaped disk (self + 4 neighbours).
    # Precision, B_P pixels within 1 of B_G: top row cols 6..14 lie on B_G's top row (9), col 15
    # touches (4,14) (1), col 16 is 2 away -> 10 of 11; bottom row likewise 10; left column
    # interior rows 5..13 at col 6 are 2 from col 4, except rows 5 and 13 which touch B_G's top/bottom
    # rows -> 2 of 9; right column col 16 interior is 2 from col 14 -> 0 of 9. P = 22/40.
    # Recall is the mirror image of the same picture: R = 22/40. F = 2PR/(P+R) = 0.55.
    # bound_th 0.008 on 30x30 gives r = ceil(0.34) = 1 too. With r = 2 every pixel is within reach:
    # F = 1.
    pred, gt = square(2), square(0)
    assert contour_accuracy(pred, gt, bound_th=1)[0] == pytest.approx(0.55)
    assert contour_accuracy(pred, gt)[0] == pytest.approx(0.55)
    assert contour_accuracy(pred, gt, bound_th=2)[0] == pytest.approx(1.0)


def line(row, size=20):
    m = np.zeros((size, size), bool)
    m[row, :] = True
    return m


def test_f_thin_lines():
    # A full-width 1-px line on row k has boundary rows k-1 (its S neighbour is fg) and k (its S
    # neighbour is bg): 2 x 20 = 40 pixels. The tolerance can't go below 1 px (bound_th >= 1 is
    # absolute; bound_th < 1 gives ceil(...) >= 1).
    # Offset 1 (rows 5 vs 6): boundaries rows {4,5} vs {5,6}; with r = 1 every row is within 1 of
    # the other map -> P = R = 1, F = 1. (Offset 1 can't give F = 0: the maps share row 5.)
    assert contour_accuracy(line(6), line(5), bound_th=1)[0] == 1.0
    # Offset 3 (rows 5 vs 8): boundaries {4,5} vs {7,8}; nearest rows are 2 apart.
    # r = 1 covers nothing: F = 0. r = 2: row 7 of B_P is within 2 of row 5, row 8 is not -> P = 1/2,
    # likewise R = 1/2 -> F = 1/2. r = 3 covers everything: F = 1.
    assert contour_accuracy(line(8), line(5), bound_th=1)[0] == 0.0
    assert contour_accuracy(line(8), line(5), bound_th=2)[0] == pytest.approx(0.5)
    assert contour_accuracy(line(8), line(5), bound_th=3)[0] == 1.0
    # vertical lines, same numbers
    assert contour_accuracy(line(8).T, line(5).T, bound_th=1)[0] == 0.0
    assert contour_accuracy(line(6).T, line(5).T, bound_th=1)[0] == 1.0


def test_f_dilates_only_the_objects_box(monkeypatch):
    """Work, not time (the timing is benchmarks/micro_speed.py): boundaries are drawn and dilated
    inside the bounding box of pred | gt (plus one pixel), two dilations per non-empty frame."""
    t, h, w = 6, 360, 640
    gt = np.zeros((t, h, w), bool)
    pred = np.zeros((t, h, w), np.uint8)
    for i in range(t - 1):  # the last frame stays empty on both sides: no work at all
        gt[i, 100:160, 200 + 10 * i : 300 + 10 * i] = True
        pred[i, 105:170, 195 + 10 * i : 290 + 10 * i] = 255
    shapes = []
    real_dilate = metrics.cv2.dilate
    monkeypatch.setattr(metrics.cv2, "dilate", lambda img, kernel: shapes.append(img.shape) or real_dilate(img, kernel))
    f = contour_accuracy(pred, gt)
    assert shapes == [(70 + 2, 105 + 2)] * (2 * (t - 1))  # rows 100..169, cols 195+10i..299+10i, one pixel of margin
    assert f[-1] == 1.0 and (f[:-1] > 0).all() and (f[:-1] < 1).all()
    # the crop changes nothing: the same masks in a frame twice as large, with a tolerance in pixels
    big_gt = np.zeros((t, 2 * h, 2 * w), bool)
    big_pred = np.zeros((t, 2 * h, 2 * w), np.uint8)
    big_gt[:, 50 : 50 + h, 70 : 70 + w] = gt
    big_pred[:, 50 : 50 + h, 70 : 70 + w] = pred
    np.testing.assert_array_equal(contour_accuracy(big_pred, big_gt, bound_th=3), contour_accuracy(pred, gt, bound_th=3))


EXPRESSION = np.zeros((3, 8, 9), bool)
EXPRESSION[:, 2:6, 3:7] = True


def test_score_expression():
    gt = EXPRESSION
    assert score_expression(gt, gt) == (1.0, 1.0)
    assert score_expression(np.zeros_like(gt), gt) == (0.0, 0.0)
    with pytest.raises(ValueError):
        score_expression(gt[:2], gt)
