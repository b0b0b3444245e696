import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts (and ends) under the float32 policy, whatever a previous test set."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


# The test files that take longest (minutes: end-to-end runs, subprocesses), longest first. `make test` runs two
# processes, each taking whole files in collection order: starting with these keeps both busy to the end.
LONGEST_FIRST = (
    "test_run_script.py", "test_experiments.py", "test_fault_tolerance.py", "test_own_models.py", "test_readme.py",
    "test_pipeline.py", "test_benchmark.py", "test_paper_flagfiles.py", "test_distribute.py", "test_multi_worker.py",
    "test_memory_bound.py", "test_training.py", "test_teacher_check.py", "test_taps.py", "test_distiller.py",
    "test_litert.py", "test_damaged_state.py", "test_fashion_mnist.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))  # stable: order kept within
