"""Every docstring of the package is valid reStructuredText, as the book's API reference renders it.

The API reference (``book/appendix/api.md``) is built by Sphinx with ``-W``: one bad docstring fails
``make book``, which the test suite does not run. Here each docstring goes through the same numpy-style
conversion (napoleon) and a docutils parse, so a mistake such as ``|alpha|`` (read as an undefined
substitution) fails a test instead. Sphinx's own roles (``:func:`` ...) are reduced to plain
interpreted text first, since plain docutils does not know them.
"""
import importlib
import inspect
import pkgutil
import re

import docutils.core
import docutils.nodes
import pytest
from sphinx.ext.napoleon import Config
from sphinx.ext.napoleon.docstring import NumpyDocstring

import rladder_nb

SPHINX_ROLE = re.compile(r":(?:py:)?[a-z]+:`")
NAPOLEON = Config(napoleon_use_param=True, napoleon_use_rtype=True)


def rst_problems(doc: str) -> list[str]:
    """docutils' warnings and errors for one docstring (level >= 2: the book builds with ``-W``), after
    napoleon's numpy-style conversion."""
    text = SPHINX_ROLE.sub("`", str(NumpyDocstring(inspect.cleandoc(doc), NAPOLEON)))
    tree = docutils.core.publish_doctree(text, settings_overrides={"report_level": 2, "halt_level": 5,
                                                                   "warning_stream": False})
    messages = list(tree.findall(docutils.nodes.system_message)) + list(tree.transform_messages)
    return sorted({m.astext().splitlines()[0] for m in messages if m["level"] >= 2})


def _docstrings():
    """(where, docstring) for every module of the package and its own public functions, classes and methods."""
    for info in pkgutil.walk_packages(rladder_nb.__path__, "rladder_nb."):
        module = importlib.import_module(info.name)
        owned = [obj for name, obj in inspect.getmembers(module, lambda o: inspect.isfunction(o) or inspect.isclass(o))
                 if obj.__module__ == module.__name__ and not name.startswith("_")]  # autodoc skips private ones
        items = [(info.name, module)]
        for obj in owned:
            items.append((f"{info.name}.{obj.__qualname__}", obj))
            if inspect.isclass(obj):
                items += [(f"{info.name}.{m.__qualname__}", m) for name, m in inspect.getmembers(obj, inspect.isfunction)
                          if m.__qualname__.startswith(obj.__qualname__ + ".") and not name.startswith("_")]
        yield from ((where, obj.__doc__) for where, obj in items if obj.__doc__)


def test_the_check_catches_what_breaks_the_book():
    assert rst_problems("Gates near 0 (largest |alpha| 0.08).")              # an undefined substitution
    assert rst_problems("- a list\n- without a blank line after it\nends here.")  # unexpected unindent
    assert not rst_problems("Fine.\n\nParameters\n----------\nx : int\n    A number, see :func:`f`.")


def test_every_docstring_is_valid_rst():
    docs = list(_docstrings())
    assert len(docs) > 100, "the package's docstrings were not found"
    bad = {where: problems for where, doc in docs if (problems := rst_problems(doc))}
    assert not bad, "docstrings that would break the book's API reference:\n" + "\n".join(
        f"{where}: {'; '.join(p)}" for where, p in bad.items())


@pytest.mark.parametrize("bad", ["|x|", "*unclosed emphasis"])
def test_problems_name_the_error(bad):
    assert any("substitution" in p or "emphasis" in p for p in rst_problems(f"Text {bad} here."))
