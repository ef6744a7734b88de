# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""docs/architecture.rst checked against the code: every module is on the
page, and no module imports one of a later stage."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'astroclusterclf'
STAGES = ('read', 'normalize', 'embed', 'head', 'annotate')
#: Front ends that chain every stage (they may import anything).
FRONT_ENDS = {'cli', 'demo', '__init__', '__main__'}


def _page_tables():
    text = (ROOT / 'docs' / 'architecture.rst').read_text()
    stages = {module: stage for stage, module in re.findall(
        r'   \* - (\w+)\n     - ``astroclusterclf\.(\w+)``', text)}
    helpers = set(re.findall(r'   \* - ``(\w+)``\n     - ', text))
    return stages, helpers


def _modules():
    """``{module: path}`` of the package's top-level modules and
    sub-packages (a sub-package's files count as the sub-package)."""
    out = {}
    for path in PACKAGE.rglob('*.py'):
        rel = path.relative_to(PACKAGE)
        out.setdefault(rel.parts[0].removesuffix('.py'), []).append(path)
    return out


def _imports(paths, module):
    """The package's top-level modules that ``paths`` import (anywhere in
    the file, deferred imports included)."""
    found = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        depth = len(path.relative_to(PACKAGE).parts) - 1
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    if node.module and node.module.startswith('astroclusterclf.'):
                        found.add(node.module.split('.')[1])
                    continue
                if node.level == depth + 1 and node.module:
                    found.add(node.module.split('.')[0])
                elif node.level == depth + 1:
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith('astroclusterclf.'):
                        found.add(alias.name.split('.')[1])
    found.discard(module)
    return found


def test_every_module_is_on_the_page():
    stages, helpers = _page_tables()
    assert set(stages.values()) <= set(STAGES)
    missing = set(_modules()) - set(stages) - helpers - FRONT_ENDS
    assert not missing, f'modules not in docs/architecture.rst: {sorted(missing)}'


def test_no_module_imports_a_later_stage():
    stages, helpers = _page_tables()
    upward = []
    for module, paths in _modules().items():
        if module in FRONT_ENDS or module not in stages:
            continue
        level = STAGES.index(stages[module])
        for other in _imports(paths, module):
            if other in stages and STAGES.index(stages[other]) > level:
                upward.append(f'{module} ({stages[module]}) imports {other} '
                              f'({stages[other]})')
    assert not upward, upward


def test_helpers_import_no_stage():
    stages, helpers = _page_tables()
    # plotting draws what the head and annotate stages computed, and takes
    # their results as arguments; it imports none of them.
    offenders = []
    for module, paths in _modules().items():
        if module in helpers and module not in FRONT_ENDS:
            used = {m for m in _imports(paths, module) if m in stages}
            if used:
                offenders.append(f'{module} imports {sorted(used)}')
    assert not offenders, offenders
