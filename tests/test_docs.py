# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The documentation's console outputs come from a real run of the code
that prints them (``scripts/regenerate_doc_outputs.py``)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        'regenerate_doc_outputs', ROOT / 'scripts' / 'regenerate_doc_outputs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_console_outputs_were_regenerated_after_the_printing_code_changed():
    script = _script()
    for page in script.PAGES:
        text = (ROOT / page).read_text()
        assert script.stamp_line() in text, (
            f'{page}: the code that prints its console outputs changed since they '
            'were regenerated; run python scripts/regenerate_doc_outputs.py')


def test_every_console_block_is_found():
    script = _script()
    text = (ROOT / 'docs' / 'tutorial.rst').read_text()
    commands = [command.split()[1] for _, _, command, _ in script._blocks(text)]
    assert commands == ['simulate', 'retrain', 'label', 'label']


def test_trust_page_quotes_the_tutorial_run():
    """The report lines quoted on the trust page are those of the
    tutorial's regenerated run, so they go stale with it or not at all."""
    tutorial = (ROOT / 'docs' / 'tutorial.rst').read_text()
    trust = (ROOT / 'docs' / 'trust.rst').read_text()
    block = trust.split('from\nthe run of the :ref:`tutorial`)::\n\n', 1)[1].split('\n\n', 1)[0]
    quoted = [line.strip() for line in block.splitlines()]
    assert len(quoted) == 3 and quoted[0].startswith('Calibration:')
    for line in quoted:
        assert f'    {line}\n' in tutorial, line
