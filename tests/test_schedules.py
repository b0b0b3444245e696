import pytest

from fitnets_tf.schedules import KDLambdaSchedule


def test_paper_mnist_schedule_4_to_1_over_150_epochs():
    schedule = KDLambdaSchedule(4.0, 1.0, 0, 150)
    assert schedule(0) == 4.0
    assert schedule(75) == pytest.approx(2.5)
    assert schedule(50) == pytest.approx(3.0)
    assert schedule(150) == 1.0
    assert schedule(400) == 1.0


def test_delayed_start_like_the_cifar_yaml():
    schedule = KDLambdaSchedule(4.0, 1.0, 5, 400)
    assert schedule(0) == schedule(5) == 4.0
    assert schedule(5 + 395 // 5) == pytest.approx(4.0 - 3.0 * 79 / 395)
    assert schedule(401) == 1.0


def test_constant():
    schedule = KDLambdaSchedule.constant(2.0)
    assert [schedule(e) for e in (0, 10, 1000)] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("kwargs,match", [
    (dict(initial=-1.0), "kd_lambda must be >= 0"),
    (dict(initial=4.0, final=1.0, start_epoch=10, end_epoch=5), "start_epoch <= end_epoch"),
])
def test_bad_schedules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KDLambdaSchedule(**kwargs)
