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
