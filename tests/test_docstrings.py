# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The public docstrings follow numpydoc: every public function and method
(in a module's ``__all__``, or defined in a class that is) documents its
parameters and what it returns, every NamedTuple or dataclass lists its
fields under ``Attributes`` (or ``Parameters``), and every other class
documents the arguments of its constructor.  An enum's own docstring is
left out (numpydoc takes the arguments of ``Enum.__call__`` for its
parameters).  No TensorFlow is imported: the modules import it only when a
backbone is built."""

import dataclasses
import enum
import importlib
import inspect
import pkgutil

import numpydoc.docscrape
import numpydoc.validate

import astroclusterclf

#: numpydoc checks that must pass: parameters undocumented (PR01) or
#: documented but not in the signature (PR02), no Returns section (RT01).
FUNCTION_CHECKS = ('PR01', 'PR02', 'RT01')
CLASS_CHECKS = ('PR01', 'PR02')


def _modules():
    names = ['astroclusterclf']
    names += [f'astroclusterclf.{info.name}'
              for info in pkgutil.iter_modules(astroclusterclf.__path__)
              if not info.name.startswith('_')]
    names.append('astroclusterclf.backbones.registry')
    return [importlib.import_module(name) for name in names]


def _qualified_name(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


def _public_objects():
    """``{qualified name: object}`` of the functions and classes in the
    modules' ``__all__`` (each once, under the module that defines it)."""
    out = {}
    for module in _modules():
        for name in getattr(module, '__all__', ()):
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                out.setdefault(_qualified_name(obj), obj)
    return out


def _public_methods(cls):
    """``{qualified name: what to validate}`` of the public methods that
    ``cls`` itself defines (static and class methods included, properties
    not).  What to validate is the name, except for a class method: numpydoc
    loads it as a bound method, which it does not check for a Returns
    section, so its function is validated instead (``cls`` left out)."""
    out = {}
    for name, member in vars(cls).items():
        if name.startswith('_'):
            continue
        qualified_name = f'{_qualified_name(cls)}.{name}'
        if isinstance(member, classmethod):
            out[qualified_name] = numpydoc.docscrape.get_doc_object(member.__func__)
        elif inspect.isfunction(getattr(member, '__func__', member)):
            out[qualified_name] = qualified_name
    return out


def _field_names(cls):
    if dataclasses.is_dataclass(cls):
        return [field.name for field in dataclasses.fields(cls)]
    if issubclass(cls, tuple) and hasattr(cls, '_fields'):
        return list(cls._fields)
    return None


def _failed_checks(target, checks):
    """The ``checks`` that numpydoc's validation of ``target`` (a qualified
    name, or a docstring object) reports."""
    errors = numpydoc.validate.validate(target)['errors']
    return [f'{code} {message}' for code, message in errors if code in checks]


def _undocumented_fields(cls, fields):
    doc = numpydoc.docscrape.ClassDoc(cls, config={'show_class_members': False})
    documented = set()
    for section in ('Attributes', 'Parameters'):
        for parameter in doc[section]:
            documented.update(name.strip().lstrip('*')
                              for name in parameter.name.split(','))
    return [name for name in fields if name not in documented]


def test_public_docstrings_are_numpydoc():
    offenders = []
    for qualified_name, obj in sorted(_public_objects().items()):
        if inspect.isfunction(obj):
            failed = _failed_checks(qualified_name, FUNCTION_CHECKS)
            offenders += [f'{qualified_name}: {error}' for error in failed]
            continue
        for method_name, target in sorted(_public_methods(obj).items()):
            failed = _failed_checks(target, FUNCTION_CHECKS)
            offenders += [f'{method_name}: {error}' for error in failed]
        if issubclass(obj, enum.Enum):
            continue
        fields = _field_names(obj)
        if fields is not None:
            missing = _undocumented_fields(obj, fields)
            if missing:
                offenders.append(f'{qualified_name}: fields not under '
                                 f'Attributes or Parameters: {missing}')
        else:
            failed = _failed_checks(qualified_name, CLASS_CHECKS)
            offenders += [f'{qualified_name}: {error}' for error in failed]
    assert not offenders, '\n'.join(['undocumented:'] + offenders)
