# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The README contract: its test command is the one CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _indented_commands(text):
    return [line.strip() for line in text.splitlines()
            if line.startswith('    ') and line.strip().startswith('pip install')]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    ci = (ROOT / '.ci' / 'run').read_text()
    commands = _indented_commands(readme)
    assert len(commands) == 2, commands
    demo, test = commands
    assert 'astroclusterclf demo' in demo
    assert 'pytest' in test
    ci_lines = [line.strip() for line in ci.splitlines()
                if line.strip() and not line.lstrip().startswith('#')]
    assert ci_lines[-1] == test
