"""rladder_nb: models, data sets and tools for the Recurrent Ladder networks textbook.

The chapters in ``book/`` import everything they run from here; see ``DESIGN`` in the README.
"""
__version__ = "0.1.0"
