"""Matplotlib figures of the book, one module per topic (``gaussian``, ``video``, ``music``, ``grouping``).

Each figure function returns a ``matplotlib.figure.Figure`` and names in its docstring the chapter
(and, where it reproduces one, the paper's figure) that shows it.
"""
