"""Data sets beyond the built-in five: a folder of PNG files written here, and TFDS data sets through the mock."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fitnets_tf.data import FolderError, dataset_info, load_splits

CLASSES = ("circle", "square", "triangle")


def write_folder(root, per_class=10, sizes=((12, 10), (9, 9))):
    """PNGs of constant colour: image k (0-based over all files) has every pixel = 3 * k, so it survives resizing
    and identifies the file. Sizes alternate, to exercise the resize."""
    k = 0
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            png = tf.io.encode_png(np.full((h, w, 3), 3 * k, "uint8")).numpy()
            (root / name / f"{i:03d}.png").write_bytes(png)
            k += 1
    (root / "README.txt").write_text("not a class")
    return per_class * len(CLASSES)


def ids_and_labels(ds):
    pairs = [(int(image[0, 0, 0]) // 3, int(label)) for image, label in ds.as_numpy_iterator()]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def test_a_folder_of_pngs_gives_reproducible_disjoint_splits(tmp_path):
    total = write_folder(tmp_path / "shapes")
    name = f"folder:{tmp_path / 'shapes'}"
    info = dataset_info(name, image_size=8)
    assert (info.image_shape, info.num_classes) == ((8, 8, 3), 3)
    splits = load_splits(name, validation_size=0.2, seed=3, image_size=8)
    # 20% test (6), then 20% of the remaining 24 for validation (ceil 4.8 = 5), 19 to train.
    assert splits.num_examples == {"train": 19, "validation": 5, "test": 6}
    seen = {}
    for key in ("train", "validation", "test"):
        ds = getattr(splits, key)
        assert ds.element_spec[0].shape == (8, 8, 3) and ds.element_spec[0].dtype == tf.uint8
        ids, labels = ids_and_labels(ds)
        assert len(ids) == splits.num_examples[key]
        assert labels == [i // 10 for i in ids]  # subfolders sorted by name: circle 0, square 1, triangle 2
        seen[key] = ids
    assert sorted(sum(seen.values(), [])) == list(range(total))  # disjoint, and every file used once
    assert sorted(i // 10 for i in seen["test"]) == [0, 0, 1, 1, 2, 2]  # stratified: 2 test images per class
    again = load_splits(name, validation_size=0.2, seed=3, image_size=8)
    assert ids_and_labels(again.test)[0] == seen["test"]
    other = load_splits(name, validation_size=0.2, seed=4, image_size=8)
    assert ids_and_labels(other.test)[0] != seen["test"]


def test_a_folder_without_image_size_takes_the_first_images_size(tmp_path):
    write_folder(tmp_path / "f", per_class=2)
    splits = load_splits(f"folder:{tmp_path / 'f'}", validation_size=0)
    assert splits.info.image_shape == (12, 10, 3) and splits.validation is None
    assert all(image.shape == (12, 10, 3) for image, _ in splits.train.as_numpy_iterator())


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        dataset_info(f"folder:{tmp_path / 'absent'}")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(ValueError, match="needs >= 2 subfolders"):
        dataset_info(f"folder:{tmp_path / 'one'}")


def test_a_bad_folder_is_not_reported_as_an_unknown_data_set(tmp_path):
    with pytest.raises(FolderError) as error:
        dataset_info(f"folder:{tmp_path / 'absent'}")
    assert "Unknown dataset" not in str(error.value) and "no such directory" in str(error.value)


def corrupt(path, seed=0):
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 300, dtype=np.uint8).tobytes())


@pytest.mark.parametrize("where", ["first", "last"])  # sorts first (it was read for the shape) or last (mid-training)
def test_an_unreadable_image_stops_the_load_naming_it_or_is_skipped_and_counted(tmp_path, where):
    total = write_folder(tmp_path / "f", per_class=8)
    bad = tmp_path / "f" / CLASSES[0 if where == "first" else -1] / ("000.png" if where == "first" else "zzz.png")
    corrupt(bad)
    total += where == "last"
    name = f"folder:{tmp_path / 'f'}"
    assert dataset_info(name, image_size=8).image_shape == (8, 8, 3)  # the shape comes from a readable image
    with pytest.raises(FolderError) as error:
        load_splits(name, validation_size=0.2, image_size=8)
    message = str(error.value)
    assert "\n" not in message and str(bad) in message and "1 of" in message and "`bad_images`" in message
    splits = load_splits(name, validation_size=0.2, image_size=8, bad_images="skip")
    assert sum(splits.num_examples.values()) == total - 1
    assert splits.checks == {"checked_images": total, "skipped_images": 1, "skipped_files": [str(bad)]}
    for key in ("train", "validation", "test"):  # every kept file decodes
        assert len(list(getattr(splits, key).as_numpy_iterator())) == splits.num_examples[key]


def test_many_unreadable_images_are_counted_and_the_first_few_named(tmp_path):
    from fitnets_tf.data import image_check

    total = write_folder(tmp_path / "f", per_class=4)
    for i in range(7):
        corrupt(tmp_path / "f" / "square" / f"bad{i}.jpg", seed=i)
    with pytest.raises(FolderError) as error:
        load_splits(f"folder:{tmp_path / 'f'}", image_size=8)
    message = str(error.value)
    assert f"7 of {total + 7} files" in message and "and 2 more" in message
    assert len(re.findall(r"bad\d\.jpg", message)) == image_check.LISTED


def test_the_check_finds_exactly_the_unreadable_files_and_logs_progress(tmp_path):
    from fitnets_tf.data.image_check import unreadable_images

    write_folder(tmp_path / "f", per_class=5)
    paths = sorted(str(p) for p in (tmp_path / "f").rglob("*.png"))
    for i in (2, 9, 14):
        corrupt(tmp_path / paths[i], seed=i)
    (tmp_path / "f" / "circle" / "truncated.png").write_bytes((tmp_path / paths[0]).read_bytes()[:40])
    paths.append(str(tmp_path / "f" / "circle" / "truncated.png"))
    lines = []
    bad = unreadable_images(paths, 3, log=lambda *a: lines.append(a), progress_seconds=0.0)
    assert bad.tolist() == [2, 9, 14, len(paths) - 1]
    assert lines and lines[-1][1:3] == (len(paths) - 4, len(paths))


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    write_folder(tmp_path / "f", per_class=3)
    (tmp_path / "f" / "hexagon").mkdir()
    with pytest.raises(FolderError, match="'hexagon' hold no image"):
        dataset_info(f"folder:{tmp_path / 'f'}")


def test_a_class_too_small_for_every_split_is_warned_and_recorded(tmp_path, caplog):
    write_folder(tmp_path / "f", per_class=10)
    (tmp_path / "f" / "zigzag").mkdir()
    (tmp_path / "f" / "zigzag" / "only.png").write_bytes(tf.io.encode_png(np.zeros((9, 9, 3), "uint8")).numpy())
    splits = load_splits(f"folder:{tmp_path / 'f'}", validation_size=0.2, image_size=8)
    absent = splits.checks["classes_absent_from"]
    # one image: in one split, absent from the other two (which, unstratified, may miss another class too)
    assert sum("zigzag" in names for names in absent.values()) == 2
    assert any("'zigzag' (1 images) have no image in the" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name,image_size,shape,classes", [
    ("kmnist", None, (28, 28, 1), 10),
    ("rock_paper_scissors", 32, (32, 32, 3), 3),   # 300x300 images, resized
])
def test_any_tfds_image_classification_data_set(name, image_size, shape, classes, tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        splits = load_splits(name, data_dir=str(tmp_path), validation_size=0.2, image_size=image_size)
        assert (splits.info.image_shape, splits.info.num_classes) == (shape, classes)
        for ds in (splits.train, splits.validation, splits.test):
            images, labels = next(ds.batch(6).as_numpy_iterator())
            assert images.shape == (6, *shape) and images.dtype == np.uint8
            assert labels.min() >= 0 and labels.max() < classes


def test_unknown_and_non_classification_names_are_refused():
    with pytest.raises(ValueError, match="Unknown dataset 'no_such_set'.*folder:PATH"):
        dataset_info("no_such_set")
    with pytest.raises(ValueError, match="not an image-classification data set"):
        dataset_info("glue/cola")


def test_channels_both_ways_for_a_folder_and_for_arrays(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
    for c in range(2):
        (tmp_path / "rgb" / f"c{c}").mkdir(parents=True)
        (tmp_path / "rgb" / f"c{c}" / "a.png").write_bytes(tf.io.encode_png(colour[c]).numpy())
        (tmp_path / "rgb" / f"c{c}" / "b.png").write_bytes(tf.io.encode_png(colour[c]).numpy())
    name = f"folder:{tmp_path / 'rgb'}"
    grey = load_splits(name, validation_size=0, channels=1)
    assert grey.info.image_shape == (6, 6, 1) and grey.info.class_names == ("c0", "c1")
    expected = {c: tf.image.rgb_to_grayscale(colour[c]).numpy() for c in range(2)}  # TF's own conversion
    for image, label in grey.train.concatenate(grey.test).as_numpy_iterator():
        assert image.shape == (6, 6, 1)
        assert np.abs(image.astype(int) - expected[int(label)].astype(int)).max() <= 1
    # A grey data set fed to an RGB network: the grey level repeated in each channel.
    digits = load_splits("digits", channels=3)
    plain = load_splits("digits")
    assert digits.info.image_shape == (8, 8, 3)
    for (rgb, _), (one, _) in zip(digits.test.take(5).as_numpy_iterator(), plain.test.take(5).as_numpy_iterator()):
        np.testing.assert_array_equal(rgb, np.repeat(one, 3, axis=-1))
    with pytest.raises(ValueError, match="channels must be 1"):
        load_splits("digits", channels=2)
