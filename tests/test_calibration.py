"""Calibration: the expected calibration error of the confidence, on cases known exactly."""

import numpy as np
import pytest

from agriseg.metrics import Calibration


def test_ece_of_a_constructed_case():
    # 4 pixels at 95% (bin 14), 3 right; 6 pixels at 50% (bin 7), 3 right; 2 ignored pixels
    pred = np.array([1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 1, 255], np.uint8)
    truth = np.array([1, 1, 1, 0, 2, 2, 2, 0, 0, 0, 255, 1], np.uint8)
    conf = np.array([95] * 4 + [50] * 6 + [99, 99], np.uint8)  # percent, as the raster stores
    cal = Calibration().update(pred, truth, conf)
    # 0.4 * |0.75 - 0.95| + 0.6 * |0.5 - 0.5|
    assert cal.ece() == pytest.approx(0.08, abs=1e-12)
    assert cal.count.sum() == 10 and cal.count[14] == 4 and cal.count[7] == 6
    # the same pixels as floats, in two strips merged, give the same
    a = Calibration().update(pred[:5], truth[:5], conf[:5] / 100.0)
    b = Calibration().update(pred[5:], truth[5:], conf[5:] / 100.0)
    assert a.merge(b).ece() == pytest.approx(0.08, abs=1e-12)


def test_ece_is_zero_when_calibrated_and_one_when_sure_and_wrong():
    truth = np.zeros(100, np.uint8)
    pred = np.zeros(100, np.uint8)
    pred[:30] = 1  # 70% right at 70% confidence
    assert Calibration().update(pred, truth, np.full(100, 0.7)).ece() == pytest.approx(0.0)
    assert Calibration().update(np.ones(100, np.uint8), truth, np.ones(100)).ece() == 1.0
    assert np.isnan(Calibration().ece())
