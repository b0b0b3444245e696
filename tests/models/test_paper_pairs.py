"""Every (teacher, FitNet) pairing of the paper's experiments gets a valid convolutional regressor by default."""

import pytest

from fitnets_tf import Distiller, HintPair, HintStage
from fitnets_tf.models import build_network
from fitnets_tf.models import zoo

PAIRS = {
    "cifar_teacher": ["fitnet1", "fitnet2", "fitnet3", "fitnet4", "depth5_30m", "depth7_30m", "depth9_30m",
                      "depth11_30m", "depth5_107m", "depth7_107m", "depth9_107m", "depth11_107m"],
    "mnist_teacher": ["mnist_fitnet"],
    "aflw_teacher": ["aflw_fitnet1", "aflw_fitnet2"],
    "digits_teacher": ["digits_fitnet"],
}


@pytest.mark.parametrize("teacher_name", sorted(PAIRS))
def test_default_hint_pairs_map_with_the_papers_conv_regressor(teacher_name):
    teacher = build_network(zoo.get_spec(teacher_name), seed=0)
    for student_name in PAIRS[teacher_name]:
        student = build_network(zoo.get_spec(student_name), seed=0)
        pair = HintPair(zoo.get_spec(student_name).hint_layer, zoo.get_spec(teacher_name).hint_layer)
        stage = HintStage([pair])
        stage.bind(Distiller(student, teacher))
        regressor = stage.regressors[0]
        assert regressor.output_shape == teacher.get_layer(stage.hint_pairs[0].hint).output.shape, student_name


def test_svhn_flagfile_pair_maps():
    teacher = build_network(zoo.get_spec("svhn_teacher"), seed=0)
    student = build_network(zoo.get_spec("svhn_fitnet"), seed=0)
    stage = HintStage([HintPair("conv8", 2)])
    stage.bind(Distiller(student, teacher))
    assert stage.regressors[0].get_layer("regressor_conv").kernel.shape[:2] == (8, 8)
    with pytest.raises(ValueError, match="No 'conv' regressor"):
        HintStage([HintPair(8, 2)]).bind(Distiller(student, teacher))
