# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of astroclusterclf.annotate: FITS header cards, byte-safe FITS
annotation, table annotation over a simulated mosaic, and table files
(the ``annotate-fits`` / ``annotate-table`` subcommands: test_cli.py).
The model is conftest's ``accurate_model``."""

import gzip
import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from helpers import LABELS
from astroclusterclf import __version__
from astroclusterclf.annotate import (annotate_fits, annotate_header, annotate_table,
                                      check_table_output, probability_column_name,
                                      read_catalog, write_table)
from astroclusterclf.cutouts import CutoutFlag
from astroclusterclf.exceptions import (AnnotationError, CatalogError, HDUNotFoundError,
                                        OutputError,
                                        ImageReadError, MissingWCSError, NoImageDataError)
from astroclusterclf.simulate import make_dataset

CUTOUT = 128  # the mosaic's cluster_size: cutouts of the size trained on

FITSVERIFY = shutil.which('fitsverify')
STILTS = shutil.which('stilts')


def _stilts_reads(suffix):
    """Whether the installed STILTS reads this table format (ECSV input
    came with STILTS 3.4-8; Debian 12 ships 3.4.7)."""
    if suffix != '.ecsv':
        return True
    proc = subprocess.run([STILTS, 'tpipe', 'in=/dev/null', 'ifmt=ecsv',
                           'omode=count'], capture_output=True, text=True,
                          timeout=120)
    return 'Unknown format' not in proc.stderr


# -- fixtures ----------------------------------------------------------------

@pytest.fixture(scope='session')
def annotated_mosaic_table(accurate_model, survey_mosaic):
    """The mosaic catalog plus four awkward rows, annotated."""
    mosaic_path, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)
    n = len(catalog)
    wcs = WCS(fits.getheader(mosaic_path))
    extra = wcs.pixel_to_world([30, -20, 1000], [1000, 1000, 1000])
    ra = list(catalog['ra']) + list(extra.ra.deg) + [0.0]
    dec = list(catalog['dec']) + list(extra.dec.deg) + [0.0]
    table = Table({'ra': ra, 'dec': dec,
                   'label': list(catalog['label']) + ['edge', 'mostly off', 'middle', 'far']})
    table['ra'].unit = u.deg
    table['dec'].unit = u.deg
    before = table.copy()
    result = annotate_table(accurate_model, table, image=mosaic_path, size=CUTOUT)
    return result, before, table, n


def data_bytes(path, index):
    """The raw bytes of the data of HDU ``index`` (decompressed for .gz)."""
    with fits.open(path, disable_image_compression=True) as hdul:
        info = hdul.fileinfo(index)
    opener = gzip.open if str(path).endswith('.gz') else open
    with opener(path, 'rb') as f:
        raw = f.read()
    return raw[info['datLoc']:info['datLoc'] + info['datSpan']]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_fitsverify_ok(path):
    if FITSVERIFY is None:
        return
    proc = subprocess.run([FITSVERIFY, '-q', str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'verification OK' in proc.stdout


def write_float_file(path, data, header):
    """Empty primary, the image in extension 1 ('SCI'), a table after it."""
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(data, header=header, name='SCI'),
                  fits.BinTableHDU(Table({'a': [1, 2]}), name='TAB')]).writeto(path)


def write_scaled_file(path, data, header, *, bzero=None):
    """int16 raw values with BSCALE/BZERO (``bzero=32768``: unsigned)."""
    if bzero is None:
        bscale, bzero = float(np.ptp(data)) / 60000.0, float(np.mean(data))
    else:
        bscale = 1.0
        data = data - data.min()
    raw = np.clip(np.round((data - bzero) / bscale), -32768, 32767).astype(np.int16)
    hdu = fits.PrimaryHDU(raw, header=header)
    hdu.header['BSCALE'] = bscale
    hdu.header['BZERO'] = bzero
    hdu.writeto(path)


# -- annotate_header -----------------------------------------------------------

def test_header_cards():
    header = fits.Header([('OBJECT', 'NGC 104', 'target')])
    out = annotate_header(header, [0.25, 0.75], LABELS, model_id='model:0123456789ab',
                          date='2025-01-02T03:04:05')
    assert out is header
    assert header['OBJECT'] == 'NGC 104'
    assert header['CLSLABEL'] == 'open cluster'
    assert header['CLSCONF'] == 0.75
    assert header['CLSMODEL'] == 'model:0123456789ab'
    assert (header['CLSPRB1'], header['CLSPRB2']) == (0.25, 0.75)
    assert header.comments['CLSPRB1'] == 'P(globular cluster)'
    assert header.comments['CLSPRB2'] == 'P(open cluster)'
    for key in ('CLSLABEL', 'CLSCONF', 'CLSMODEL'):
        assert header.comments[key]
    history = list(header['HISTORY'])
    assert history == [f'astroclusterclf {__version__} classified this HDU '
                       '2025-01-02T03:04:05 UTC']


def test_header_reannotation_replaces_cards():
    header = fits.Header()
    annotate_header(header, [0.2, 0.3, 0.5], ['a', 'b', 'c'], model_id='m:1')
    annotate_header(header, [0.9, 0.1], ['a', 'b'], model_id='m:2')
    assert 'CLSPRB3' not in header
    assert header['CLSLABEL'] == 'a' and header['CLSMODEL'] == 'm:2'
    assert [k for k in header if k.startswith('CLS')] == [
        'CLSLABEL', 'CLSCONF', 'CLSMODEL', 'CLSFLAG', 'CLSPRB1', 'CLSPRB2']
    assert len(header['HISTORY']) == 2      # one per annotation


def test_header_long_and_non_ascii_labels(tmp_path):
    labels = ['globular cluster with a very long descriptive name ' * 3,
              'ω Centauri-like nucleus (stripped dwarf galaxy remnant, candidate)']
    header = fits.Header()
    annotate_header(header, [0.6, 0.4], labels, model_id='m:1')   # no warning
    for card in header.cards:
        assert len(card.image) % 80 == 0
    assert header.comments['CLSPRB1'].endswith('...')
    assert header['CLSLABEL'] == labels[0].strip() or header['CLSLABEL'] == labels[0]
    assert header.comments['CLSPRB2'].startswith('P(? Centauri-like')
    # the header is valid FITS
    path = tmp_path / 'long.fits'
    fits.PrimaryHDU(np.zeros((4, 4), np.float32), header=header).writeto(path)
    assert_fitsverify_ok(path)
    assert fits.getheader(path)['CLSLABEL'] == labels[0].rstrip()


@pytest.mark.parametrize('probabilities, labels, match', [
    ([0.5, 0.5, 0.0], LABELS, '3 probabilities for 2 labels'),
    ([np.nan, 1.0], LABELS, 'finite'),
    (['a', 'b'], LABELS, 'not numbers'),
    (np.full(100, 0.01), [f'c{i}' for i in range(100)], 'at most 99'),
])
def test_header_errors(probabilities, labels, match):
    with pytest.raises(AnnotationError, match=match):
        annotate_header(fits.Header(), probabilities, labels, model_id='m')


def test_header_not_a_header():
    with pytest.raises(AnnotationError, match='expected a FITS Header'):
        annotate_header({}, [1.0], ['a'], model_id='m')


# -- annotate_fits -------------------------------------------------------------

@pytest.mark.slow
def test_annotate_fits_output(accurate_model, cluster_image, tmp_path):
    data, header = cluster_image
    src = tmp_path / 'in.fits'
    write_float_file(src, data, header)
    before = sha256(src)
    out = tmp_path / 'out.fits'
    result = annotate_fits(accurate_model, src, output=out)
    assert sha256(src) == before
    assert result.path == out and result.hdu == 1
    assert result.label == 'globular cluster' and result.confidence > 0.75
    with fits.open(out) as hdul:
        assert 'CLSLABEL' not in hdul[0].header and 'CLSLABEL' not in hdul[2].header
        h = hdul[1].header
        assert h['CLSLABEL'] == result.label
        assert h['CLSCONF'] == pytest.approx(result.confidence)
        assert h['CLSMODEL'] == accurate_model.model_id
        assert h['CLSPRB1'] + h['CLSPRB2'] == pytest.approx(1, abs=1e-5)
        assert h.comments['CLSPRB1'] == 'P(globular cluster)'
        history = [str(v) for v in h['HISTORY'] if 'classified this HDU' in str(v)]
        assert len(history) == 1 and __version__ in history[0]
        assert hdul[1].name == 'SCI' and hdul[2].name == 'TAB'
    for index in range(3):
        assert data_bytes(out, index) == data_bytes(src, index)
    assert_fitsverify_ok(out)


@pytest.mark.slow
@pytest.mark.parametrize('bzero', [None, 32768.0])
def test_annotate_fits_scaled_int16(accurate_model, cluster_image, tmp_path, bzero):
    data, header = cluster_image
    src = tmp_path / 'scaled.fits'
    write_scaled_file(src, data, header, bzero=bzero)
    out = tmp_path / 'out.fits'
    annotate_fits(accurate_model, src, output=out)
    with fits.open(src, do_not_scale_image_data=True) as a, \
            fits.open(out, do_not_scale_image_data=True) as b:
        assert b[0].header['BITPIX'] == 16
        assert b[0].data.dtype == np.dtype('>i2')
        assert b[0].header['BSCALE'] == a[0].header['BSCALE']
        assert b[0].header['BZERO'] == a[0].header['BZERO']
        assert 'CLSLABEL' in b[0].header
    assert data_bytes(out, 0) == data_bytes(src, 0)
    assert_fitsverify_ok(out)


@pytest.mark.slow
def test_annotate_fits_checksum(accurate_model, cluster_image, tmp_path):
    data, header = cluster_image
    src = tmp_path / 'sum.fits'
    fits.PrimaryHDU(data, header=header).writeto(src, checksum=True)
    out = tmp_path / 'out.fits'
    annotate_fits(accurate_model, src, output=out)
    with fits.open(src) as a, fits.open(out, checksum=True) as b:
        assert b[0].verify_checksum() == 1 and b[0].verify_datasum() == 1
        assert b[0].header['DATASUM'] == a[0].header['DATASUM']
        assert b[0].header['CHECKSUM'] != a[0].header['CHECKSUM']
    assert_fitsverify_ok(out)
    # without CHECKSUM/DATASUM in the input none are added
    plain = tmp_path / 'plain.fits'
    fits.PrimaryHDU(data, header=header).writeto(plain)
    annotate_fits(accurate_model, plain, output=tmp_path / 'plain_out.fits')
    h = fits.getheader(tmp_path / 'plain_out.fits')
    assert 'CHECKSUM' not in h and 'DATASUM' not in h


@pytest.mark.slow
def test_annotate_fits_compressed_and_gzip(accurate_model, cluster_image, tmp_path):
    data, header = cluster_image
    fz = tmp_path / 'in.fits.fz'
    fits.HDUList([fits.PrimaryHDU(),
                  fits.CompImageHDU(data, header=header)]).writeto(fz)
    out = tmp_path / 'out.fits.fz'
    annotate_fits(accurate_model, fz, output=out)
    assert data_bytes(out, 1) == data_bytes(fz, 1)       # not recompressed
    with fits.open(out) as a, fits.open(fz) as b:
        assert a[1].header['CLSLABEL'] == 'globular cluster'
        np.testing.assert_array_equal(a[1].data, b[1].data)
    assert_fitsverify_ok(out)

    gz = tmp_path / 'in.fits.gz'
    fits.PrimaryHDU(data, header=header).writeto(gz)
    out = tmp_path / 'out.fits.gz'
    annotate_fits(accurate_model, gz, output=out)
    assert out.read_bytes()[:2] == b'\x1f\x8b'           # still gzip
    assert data_bytes(out, 0) == data_bytes(gz, 0)
    assert fits.getheader(out)['CLSLABEL'] == 'globular cluster'


@pytest.mark.slow
def test_annotate_fits_in_place(accurate_model, cluster_image, tmp_path):
    data, header = cluster_image
    src = tmp_path / 'in.fits'
    write_float_file(src, data, header)
    os.chmod(src, 0o640)
    raw = data_bytes(src, 1)
    result = annotate_fits(accurate_model, src, in_place=True, hdu='SCI')
    assert result.path == src and result.hdu == 1
    assert fits.getheader(src, 1)['CLSLABEL'] == result.label
    assert data_bytes(src, 1) == raw
    assert stat.S_IMODE(src.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.fits']


@pytest.mark.slow
def test_annotate_fits_in_place_failure_leaves_original(accurate_model, cluster_image,
                                                        tmp_path, monkeypatch):
    data, header = cluster_image
    src = tmp_path / 'in.fits'
    fits.PrimaryHDU(data, header=header).writeto(src)
    before = src.read_bytes()

    def fail_midway(self, fileobj, *args, **kwargs):
        with open(fileobj, 'wb') as f:
            f.write(b'SIMPLE  =                    T' + b' ' * 2000)
        raise OSError('disk full (simulated)')

    monkeypatch.setattr(fits.HDUList, 'writeto', fail_midway)
    with pytest.raises(OSError, match='disk full'):
        annotate_fits(accurate_model, src, in_place=True)
    monkeypatch.undo()
    assert src.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['in.fits']   # no temp file left


@pytest.mark.slow
def test_annotate_fits_errors(accurate_model, cluster_image, tmp_path):
    data, header = cluster_image
    src = tmp_path / 'in.fits'
    fits.PrimaryHDU(data, header=header).writeto(src)
    before = sha256(src)
    with pytest.raises(AnnotationError, match='exactly one of output= and in_place'):
        annotate_fits(accurate_model, src)
    with pytest.raises(AnnotationError, match='exactly one of output= and in_place'):
        annotate_fits(accurate_model, src, output=tmp_path / 'o.fits', in_place=True)
    with pytest.raises(OutputError, match='output is the input file'):
        annotate_fits(accurate_model, src, output=src, overwrite=True)
    existing = tmp_path / 'existing.fits'
    existing.write_bytes(b'x')
    with pytest.raises(OutputError, match='output file exists'):
        annotate_fits(accurate_model, src, output=existing)
    assert existing.read_bytes() == b'x'
    with pytest.raises(OutputError, match='does not exist'):
        annotate_fits(accurate_model, src, output=tmp_path / 'nope' / 'o.fits')
    with pytest.raises(ImageReadError, match='file not found'):
        annotate_fits(accurate_model, tmp_path / 'missing.fits', output=tmp_path / 'o.fits')
    with pytest.raises(HDUNotFoundError, match='no HDU 3'):
        annotate_fits(accurate_model, src, output=tmp_path / 'o.fits', hdu=3)
    table_only = tmp_path / 'table.fits'
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({'a': [1]}))]).writeto(table_only)
    with pytest.raises(NoImageDataError):
        annotate_fits(accurate_model, table_only, output=tmp_path / 'o.fits')
    assert sha256(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['existing.fits', 'in.fits',
                                                          'table.fits']


# -- annotate_table ------------------------------------------------------------

@pytest.mark.slow
def test_table_columns_and_meta(annotated_mosaic_table, accurate_model):
    table, before, original, n = annotated_mosaic_table
    assert original.colnames == ['ra', 'dec', 'label'] and len(original) == len(before)
    assert table is not original
    assert table.colnames == ['ra', 'dec', 'label', 'pred_class', 'pred_conf',
                              'prob_globular_cluster', 'prob_open_cluster', 'pred_ood',
                              'pred_flag']
    for name in table.colnames[3:]:
        assert table[name].description
    assert table['pred_conf'].unit == u.dimensionless_unscaled
    assert table['prob_open_cluster'].unit == u.dimensionless_unscaled
    assert table['pred_flag'].dtype == np.int16
    assert '1 = off the image' in table['pred_flag'].description
    assert '8 = unreadable file' in table['pred_flag'].description
    assert table.meta['CLSMODEL'] == accurate_model.model_id
    assert table.meta['CLSVERS'] == f'astroclusterclf {__version__}'
    assert [table.meta['CLSLAB1'], table.meta['CLSLAB2']] == LABELS
    ok = ~table['pred_class'].mask
    probs = np.array([table['prob_globular_cluster'][ok], table['prob_open_cluster'][ok]])
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(table['pred_conf'][ok], probs.max(axis=0))


@pytest.mark.slow
def test_table_flags(annotated_mosaic_table):
    table, _, _, n = annotated_mosaic_table
    edge, mostly_off, middle, far = table[n:]
    # A partial cutout (NaN-filled edge) may also look unlike the training
    # images (flag 16); the cutout flag itself must be exactly PARTIAL.
    assert edge['pred_flag'] & 0b1111 == CutoutFlag.PARTIAL
    assert edge['pred_class'] is not np.ma.masked          # classified, flagged
    assert mostly_off['pred_flag'] == CutoutFlag.PARTIAL | CutoutFlag.BAD_PIXELS
    # The middle row is a blank field 130 pixels from the nearest cluster:
    # its cutout is whole (no cutout bit), and it may be flagged as unlike
    # the training images, which all hold a cluster.
    assert middle['pred_flag'] & 0b1111 == 0
    assert middle['pred_class'] is not np.ma.masked
    assert far['pred_flag'] == CutoutFlag.OFF_IMAGE
    for row in (mostly_off, far):
        for name in ('pred_class', 'pred_conf', 'prob_globular_cluster',
                     'prob_open_cluster'):
            assert row[name] is np.ma.masked
    # The clusters: no cutout flag; the out-of-distribution threshold flags
    # a stated 5 % of training-like images, so one or two of 24 may be.
    assert np.all(table['pred_flag'][:n] & 0b1111 == 0)
    assert np.mean(table['pred_flag'][:n] > 0) <= 0.15


@pytest.mark.slow
def test_table_accuracy_on_mosaic(annotated_mosaic_table):
    table, _, _, n = annotated_mosaic_table
    truth = table['label'][:n]
    accuracy = np.mean(table['pred_class'][:n] == truth)
    assert accuracy >= 0.9, f'accuracy {accuracy:.3f} on {n} mosaic clusters'


@pytest.mark.slow
def test_table_angle_size(accurate_model, survey_mosaic):
    mosaic_path, catalog_path = survey_mosaic
    catalog = Table.read(catalog_path)[:4]
    # 0.4 arcsec pixels: 51.2 arcsec is the same 128-pixel cutout
    by_angle = annotate_table(accurate_model, catalog, image=mosaic_path,
                              size=51.2 * u.arcsec)
    by_pixels = annotate_table(accurate_model, catalog, image=mosaic_path, size=CUTOUT)
    np.testing.assert_allclose(by_angle['prob_open_cluster'],
                               by_pixels['prob_open_cluster'], atol=1e-5)


@pytest.mark.slow
def test_table_path_column(accurate_model, tmp_path, cluster_image):
    files = make_dataset(tmp_path / 'set', n_per_class=3, seed=11)
    paths = [str(p) for label in LABELS for p in files[label]]
    truth = [label for label in LABELS for _ in files[label]]
    nan_file = tmp_path / 'nan.fits'
    data, header = cluster_image
    bad = data.copy()
    bad[:, :100] = np.nan
    fits.PrimaryHDU(bad, header=header).writeto(nan_file)
    junk = tmp_path / 'junk.fits'
    junk.write_bytes(b'junk' * 100)
    table = Table({'file': paths + [str(tmp_path / 'missing.fits'), str(junk), str(nan_file)],
                   'truth': truth + ['', '', '']})
    result = annotate_table(accurate_model, table, path_column='file')
    assert list(result['pred_flag'][-3:]) == [CutoutFlag.UNREADABLE, CutoutFlag.UNREADABLE,
                                              CutoutFlag.BAD_PIXELS]
    assert np.all(result['pred_class'].mask[-3:])
    assert np.all(result['pred_flag'][:-3] == 0)
    assert np.mean(result['pred_class'][:-3] == result['truth'][:-3]) >= 0.8


@pytest.mark.slow
def test_table_errors(accurate_model, survey_mosaic, tmp_path):
    mosaic_path, catalog_path = survey_mosaic
    catalog = Table({'RAJ2000': [1.0], 'DEJ2000': [2.0]})
    with pytest.raises(CatalogError, match=r"tried a SkyCoord column and ra/dec, RA/DEC, "
                                           r"RAJ2000/DEJ2000.*columns present: X, Y.*"
                                           r"--ra-column/--dec-column"):
        annotate_table(accurate_model, Table({'X': [1.0], 'Y': [2.0]}), image=mosaic_path)
    with pytest.raises(CatalogError, match=r"no column 'ra', 'dec'; columns present: "
                                           r"RAJ2000, DEJ2000"):
        annotate_table(accurate_model, catalog, image=mosaic_path, ra='ra', dec='dec')
    with pytest.raises(AnnotationError, match='exactly one of image= .* and path_column='):
        annotate_table(accurate_model, catalog)
    with pytest.raises(AnnotationError, match='exactly one of image='):
        annotate_table(accurate_model, catalog, image=mosaic_path, path_column='RAJ2000')
    with pytest.raises(CatalogError, match="no column 'file'"):
        annotate_table(accurate_model, catalog, path_column='file')
    with pytest.raises(CatalogError, match='expected an astropy Table'):
        annotate_table(accurate_model, {'ra': [1]}, image=mosaic_path)
    nowcs = tmp_path / 'nowcs.fits'
    fits.PrimaryHDU(np.zeros((64, 64), np.float32)).writeto(nowcs)
    with pytest.raises(MissingWCSError):
        annotate_table(accurate_model, catalog, image=nowcs, ra='RAJ2000', dec='DEJ2000')


def test_probability_column_names():
    assert probability_column_name('globular cluster') == 'prob_globular_cluster'
    assert probability_column_name('H-alpha/[OIII]') == 'prob_H_alpha__OIII_'


# -- table files -----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('name', ['out.ecsv', 'out.fits', 'out.xml', 'out.vot'])
def test_write_table_formats(annotated_mosaic_table, tmp_path, name):
    table = annotated_mosaic_table[0]
    path = write_table(table, tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == [name]      # no temp file left
    back = Table.read(path)
    assert len(back) == len(table)
    assert set(table.colnames) <= set(back.colnames)
    assert np.all(back['pred_flag'] == table['pred_flag'])
    if name.endswith('.ecsv') or name.endswith(('.xml', '.vot')):
        # (VOTable re-wraps long descriptions)
        assert (' '.join(back['pred_flag'].description.split())
                == table['pred_flag'].description)
        unclassified = table['pred_class'].mask
        assert np.all(np.ma.getmaskarray(back['pred_conf']) == unclassified)
        # (a VOTable has no null strings: masked labels come back empty)
        assert set(np.ma.filled(back['pred_class'][unclassified], '')) == {''}
    if name.endswith(('.ecsv', '.fits')):
        assert back.meta['CLSMODEL'] == table.meta['CLSMODEL']
    if STILTS is not None and _stilts_reads(path.suffix):
        proc = subprocess.run([STILTS, 'tpipe', f'in={path}', 'omode=stats'],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert 'pred_conf' in proc.stdout and 'pred_flag' in proc.stdout


def test_write_table_errors(tmp_path):
    table = Table({'a': [1, 2]})
    existing = tmp_path / 'x.ecsv'
    existing.write_text('keep')
    with pytest.raises(OutputError, match='output file exists'):
        write_table(table, existing)
    assert existing.read_text() == 'keep'
    write_table(table, existing, overwrite=True)
    assert len(Table.read(existing)) == 2
    with pytest.raises(OutputError, match='cannot tell the table format'):
        write_table(table, tmp_path / 'x.unknown')
    with pytest.raises(OutputError, match='does not exist'):
        write_table(table, tmp_path / 'no' / 'x.ecsv')
    with pytest.raises(OutputError, match="unknown table format 'nope'"):
        check_table_output(tmp_path / 'y.ecsv', format='nope')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['x.ecsv']


def test_read_catalog_errors(tmp_path):
    with pytest.raises(CatalogError, match='catalog file not found'):
        read_catalog(tmp_path / 'missing.ecsv')
    junk = tmp_path / 'junk.fits'
    junk.write_bytes(b'\x00' * 100)
    with pytest.raises(CatalogError, match='cannot read as a table'):
        read_catalog(junk)


def test_missing_table_writer_is_found_before_any_work(tmp_path, monkeypatch):
    # Without pyarrow, a Parquet output is refused when it is checked (before
    # a catalog is classified), with the extra that installs it.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'pyarrow' else real(name, *a))
    with pytest.raises(OutputError, match=r'out.parquet: writing parquet tables needs '
                                          r'pyarrow; install it with pip install '
                                          r'"astroclusterclf\[survey\]"'):
        check_table_output(tmp_path / 'out.parquet')
    assert check_table_output(tmp_path / 'out.ecsv') == 'ascii.ecsv'
