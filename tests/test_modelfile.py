# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The model-file schema: one reader, one writer, every earlier version
loads."""

import json
import zipfile

import numpy as np
import pytest

from astroclusterclf import ClusterClassifier
from astroclusterclf.exceptions import ModelFileError
from astroclusterclf.modelfile import (FIELDS, FORMAT_VERSION, METADATA_MEMBER, OOD_MEMBER,
                                       check_metadata, read_model_file, upgrade)

GOOD = {'format': 'astroclusterclf', 'format_version': 2, 'labels': ['a', 'b']}


def test_every_field_is_typed_and_versioned():
    assert all(0 <= f.since <= FORMAT_VERSION and f.types and f.description
               for f in FIELDS.values())
    check_metadata(dict(GOOD, fine_tuning=None, selection=None, training_frames=None,
                        temperature=2, head='logistic', views=[]), 'x')
    for key, bad in (('views', {}), ('head', 3), ('fine_tuning', []),
                     ('ood_false_alarm_rate', '0.05'), ('temperature', True)):
        with pytest.raises(ModelFileError, match=f"'{key}' must be of type"):
            check_metadata(dict(GOOD, **{key: bad}), 'x')


def test_upgrade_fills_what_older_versions_did():
    v0 = {'format': 'astroclusterclf', 'labels': ['a', 'b']}
    up = upgrade(v0)
    assert up['format_version'] == FORMAT_VERSION and up['temperature'] == 1.0
    assert up['head'] == 'sgd' and 'views' not in up
    assert upgrade(dict(GOOD, head='logistic'))['head'] == 'logistic'
    assert v0 == {'format': 'astroclusterclf', 'labels': ['a', 'b']}    # a copy


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info)
            if info.filename == METADATA_MEMBER:
                data = json.dumps(change(json.loads(data))).encode()
            if info.filename == OOD_MEMBER and change.__name__ == 'version_0':
                continue
            b.writestr(info, data)


def version_1(meta):
    for key in ('views', 'blend', 'head', 'ood_false_alarm_rate'):
        meta.pop(key, None)
    meta['format_version'] = 1
    return meta


def version_0(meta):
    meta = version_1(meta)
    for key in ('format_version', 'temperature', 'calibration', 'ood_view', 'ood_threshold',
                'training_frames', 'selection', 'fine_tuning'):
        meta.pop(key, None)
    return meta


@pytest.mark.slow
@pytest.mark.parametrize('change', [version_1, version_0])
def test_files_of_each_earlier_version_load(trained_model_path, small_dataset_files,
                                            tmp_path, change):
    old = tmp_path / 'old.keras'
    _rewrite(trained_model_path, old, change)
    metadata, _ = read_model_file(old)
    assert metadata['file_version'] == (1 if change is version_1 else 0)
    assert metadata['format_version'] == FORMAT_VERSION
    clf = ClusterClassifier.load(old)
    new = ClusterClassifier.load(trained_model_path)
    assert clf.labels == new.labels and clf.ood_false_alarm_rate != 0.05
    if change is version_1:
        np.testing.assert_allclose(clf.predict(small_dataset_files),
                                   new.predict(small_dataset_files), atol=1e-6)
    else:
        assert clf.temperature == 1.0 and clf.ood is None
    # Saved again, it is a file of the current version.
    clf.save(tmp_path / 'again.keras')
    again, _ = read_model_file(tmp_path / 'again.keras')
    assert again['file_version'] == FORMAT_VERSION


def test_newer_versions_are_refused(tmp_path):
    path = tmp_path / 'future.keras'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr(METADATA_MEMBER, json.dumps(dict(GOOD, format_version=FORMAT_VERSION + 1)))
    with pytest.raises(ModelFileError, match='newer than this astroclusterclf supports'):
        read_model_file(path)
