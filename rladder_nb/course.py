"""Tools for teachers: answer checks for exercise cells, and student / instructor notebooks.

Introduced in the appendix *Teaching with this book* (``book/appendix/course_guide.md``).

* **Checks** — :func:`check_close`, :func:`check_equal`, :func:`check_shape` and :func:`check` (which
  picks one of the first two) go in exercise cells. A right answer prints ``✓ ...``; a wrong one
  raises an ``AssertionError`` that says what was expected and where the answer differs. An answer
  still left as ``...`` (the student notebook's placeholder) prints a reminder instead, so that
  "Run all" gets through a notebook whose exercises are not answered yet.
* **Export** — :func:`export` turns chapters (MyST Markdown notebooks) into ``.ipynb`` files with
  jupytext, without outputs. The *instructor* notebook keeps everything. The *student* notebook replaces
  the code between ``# BEGIN SOLUTION`` / ``# END SOLUTION`` with ``# YOUR CODE HERE`` and ``...`` (a
  no-op), and drops the prose of ``{solution-start}`` ... ``{solution-end}`` (and ``{solution}``) blocks.
* **The student notebook still runs** — names that a solution defines and later code reads (and that
  nothing defined before) are bound to ``...`` in the placeholder; the checks treat ``...`` as "not
  answered yet". A later cell that computes with such a name is reported as a warning at export time.
* **Fail closed** — unbalanced or malformed markers, a code cell inside a solution without markers, or
  a Markdown file without a jupytext header raise a ``ValueError`` naming the file, cell and line: a
  solution is never handed out by accident. Everything is checked before any file is written, and
  each file is written atomically.
"""
from __future__ import annotations

import ast
import fnmatch
import hashlib
import math
import os
import re
import warnings
from numbers import Real
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("student", "instructor", "both")

# ---------------------------------------------------------------------------------------------------
# checks for exercise cells
# ---------------------------------------------------------------------------------------------------


def _start(value, name, hint) -> bool:
    """Check the options; True when ``value`` is still the student placeholder ``...`` (not answered)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string such as 'posterior mean', got {name!r}")
    if hint is not None and not isinstance(hint, str):
        raise TypeError(f"hint must be a string or None, got {type(hint).__name__}")
    if value is Ellipsis:
        print(f"… {name}: not answered yet (replace the `...` with your code)")
    return value is Ellipsis


def _fail(name, message, hint):
    raise AssertionError(f"✗ {name}: {message}" + (f"\n  Hint: {hint}" if hint else ""))


def _as_array(value):
    """``value`` as a numpy array (tensors are detached and moved to the CPU), or None if ragged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        return None
    return None if arr.dtype == object else arr


def _at(index) -> str:
    return "" if index == () else f" at index {tuple(int(i) for i in index)}"


def _show(entry) -> str:
    return repr(entry.item() if isinstance(entry, np.generic) else entry)


def check_close(value, expected, rtol: float = 1e-5, atol: float = 1e-8, name: str = "your answer",
                hint: str | None = None) -> None:
    """Check that ``|value - expected| <= atol + rtol * |expected|`` entry by entry (``numpy.isclose``).

    Prints ``✓`` when the answer is right and a reminder when it is still ``...``; a wrong answer
    raises ``AssertionError`` saying what was expected and where the answer differs most. Introduced
    in the appendix *Teaching with this book*.

    Parameters
    ----------
    value : number, array or tensor
        The student's answer; ``...`` means "not answered yet".
    expected : number, array or tensor
        The reference; the shapes must match exactly.
    rtol, atol : float
        Relative and absolute tolerances, >= 0.
    name : str
        What the answer is, used in the messages (e.g. ``"posterior mean"``).
    hint : str, optional
        Text added to the failure message.
    """
    for label, tol in (("rtol", rtol), ("atol", atol)):
        if isinstance(tol, bool) or not isinstance(tol, Real) or not math.isfinite(tol) or tol < 0:
            raise ValueError(f"{label} must be a finite number >= 0, got {tol!r}")
    want = _as_array(expected)
    if want is None or want.dtype.kind not in "biufc":
        raise TypeError(f"expected must be a number or an array of numbers, got {type(expected).__name__}; "
                        "use check_equal for other values")
    if _start(value, name, hint):
        return
    got = _as_array(value)
    if got is None or got.dtype.kind not in "biufc":
        _fail(name, f"expected a number or an array of numbers, got {type(value).__name__}: {value!r:.80}", hint)
    if got.shape != want.shape:
        _fail(name, f"expected shape {want.shape}, got shape {got.shape}", hint)
    got, want = (a.astype(float) if a.dtype.kind in "biu" else a for a in (got, want))
    close = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        distance = np.where(close, -1.0, np.nan_to_num(np.abs(got - want).astype(float), nan=np.inf))
        index = np.unravel_index(np.argmax(distance), distance.shape)
        where = "" if want.ndim == 0 else \
            f" ({int((~close).sum())} of {close.size} entries differ; the largest difference is{_at(index)})"
        _fail(name, f"not close enough to the expected value{where}: got {_show(got[index])}, "
                    f"expected {_show(want[index])}; allowed: |got - expected| <= {atol:g} + {rtol:g} * |expected|",
              hint)
    print(f"✓ {name} is correct")


def check_equal(value, expected, name: str = "your answer", hint: str | None = None) -> None:
    """Check that ``value`` equals ``expected`` exactly (arrays: same shape and every entry equal).

    ``expected`` may be a number, string, array, tensor, list, dict, ...; ``name`` and ``hint`` are as
    in :func:`check_close`, and so is what it prints or raises.

    Introduced in the appendix *Teaching with this book*.
    """
    if _start(value, name, hint):
        return
    want, got = _as_array(expected), _as_array(value)
    arrays = any(isinstance(v, np.ndarray) or hasattr(v, "detach") for v in (value, expected)) or \
        isinstance(expected, (list, tuple))
    if arrays and want is not None and got is not None:
        if got.shape != want.shape:
            _fail(name, f"expected shape {want.shape}, got shape {got.shape}", hint)
        try:
            differ = np.asarray(got != want, dtype=bool)
        except (TypeError, ValueError):
            differ = np.ones(())
        if differ.shape != want.shape:  # numpy could not compare the entries one by one
            _fail(name, f"expected {expected!r:.200}, got {value!r:.200}", hint)
        if differ.any():
            index = np.unravel_index(np.argmax(differ), differ.shape)
            _fail(name, f"{int(differ.sum())} of {differ.size} entries differ; the first{_at(index)}: "
                        f"got {_show(got[index])}, expected {_show(want[index])}", hint)
    else:
        try:
            equal = bool(value == expected)
        except (TypeError, ValueError):
            equal = False
        if not equal:
            _fail(name, f"expected {expected!r:.200}, got {value!r:.200}", hint)
    print(f"✓ {name} is correct")


def check_shape(value, expected_shape, name: str = "your answer", hint: str | None = None) -> None:
    """Check the shape of an array or tensor; ``None`` in ``expected_shape`` matches any size.

    ``expected_shape`` is a tuple of sizes and ``None``, e.g. ``(None, 3)`` for "any number of rows of
    3"; ``name`` and ``hint`` are as in :func:`check_close`, and so is what it prints or raises.

    Introduced in the appendix *Teaching with this book*.
    """
    if not isinstance(expected_shape, (tuple, list)) or not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)
            for d in expected_shape):
        raise ValueError(f"expected_shape must be a tuple of sizes >= 0 or None (any size), got {expected_shape!r}")
    if _start(value, name, hint):
        return
    shown = "(" + ", ".join("any" if d is None else str(d) for d in expected_shape) + \
            ("," if len(expected_shape) == 1 else "") + ")"
    try:
        got = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
    except (TypeError, ValueError):
        _fail(name, f"expected an array of shape {shown}, got a {type(value).__name__} that is not one", hint)
    if len(got) != len(expected_shape):
        _fail(name, f"expected {len(expected_shape)} dimensions, shape {shown}; got {len(got)}, shape {got}", hint)
    for axis, (g, w) in enumerate(zip(got, expected_shape)):
        if w is not None and g != w:
            _fail(name, f"expected shape {shown}, got {got}: dimension {axis} is {g}, expected {w}", hint)
    print(f"✓ {name} has the right shape {got}")


def check(value, expected, name: str = "your answer", rtol: float | None = None, atol: float | None = None,
          hint: str | None = None) -> None:
    """:func:`check_close` when ``expected`` holds floats (or a tolerance is given), else :func:`check_equal`.

    Introduced in the appendix *Teaching with this book*.
    """
    want = None if isinstance(expected, (str, bytes, dict, set)) else _as_array(expected)
    if (want is not None and want.dtype.kind in "fc") or rtol is not None or atol is not None:
        return check_close(value, expected, rtol=1e-5 if rtol is None else rtol,
                           atol=1e-8 if atol is None else atol, name=name, hint=hint)
    return check_equal(value, expected, name=name, hint=hint)


# ---------------------------------------------------------------------------------------------------
# student / instructor notebooks
# ---------------------------------------------------------------------------------------------------

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^[ \t]*#\s*END SOLUTION\s*$")
_MARKER_LIKE = re.compile(r"^\s*#.*\b(BEGIN|END)[\s_-]*SOLUTION", re.IGNORECASE)
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>.*?)\s*$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[\w:.-]+)\}\s*(?P<argument>.*)$")


def _closing(lines, start, fence, where):
    """Index of the line that closes the fence opened at ``lines[start]``."""
    for j in range(start + 1, len(lines)):
        m = _FENCE.match(lines[j])
        if m and m["fence"][0] == fence[0] and len(m["fence"]) >= len(fence) and not m["info"]:
            return j
    raise ValueError(f"{where}, line {start + 1}: the block opened by {lines[start].strip()!r} is never closed")


def _strip_solution_prose(source, state, where) -> str:
    """Drop ``{solution-start}``..``{solution-end}`` and ``{solution}`` blocks; ``state`` spans cells."""
    if state["solution"] is None:
        state["exercise"] = None  # an exercise's label names the code cells up to the next prose
    lines, kept, i = source.split("\n"), [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            if state["solution"] is None:
                kept.append(lines[i])
            i += 1
            continue
        j = _closing(lines, i, m["fence"], where)
        d = _DIRECTIVE.match(m["info"])
        name = d["name"] if d else None
        if name in ("exercise", "exercise-start"):
            labels = [ln.split(":label:", 1)[1].strip() for ln in lines[i + 1:j] if ln.strip().startswith(":label:")]
            state["exercise"] = labels[0] if labels else state["exercise"]
        if name == "solution-start":
            if state["solution"] is not None:
                raise ValueError(f"{where}, line {i + 1}: {{solution-start}} {d['argument']} opens inside the "
                                 f"solution of {state['solution']} (opened {state['opened_at']}); "
                                 "close that one with {solution-end} first")
            state.update(solution=d["argument"] or "?", opened_at=f"{where}, line {i + 1}")
            state["exercise"] = d["argument"] or state["exercise"]
        elif name == "solution-end":
            if state["solution"] is None:
                raise ValueError(f"{where}, line {i + 1}: {{solution-end}} without a {{solution-start}} before it")
            state.update(solution=None, exercise=None)
        elif name != "solution" and state["solution"] is None:
            kept.extend(lines[i:j + 1])
        i = j + 1
    return source if len(kept) == len(lines) else "\n".join(kept).strip("\n")


def _solution_regions(source, where, in_solution):
    """``[(begin_line, end_line, indent)]`` of the marked regions of a code cell; checks the markers."""
    regions, begin = [], None
    for k, line in enumerate(source.split("\n")):
        b, e = _BEGIN.match(line), _END.match(line)
        if b:
            if begin is not None:
                raise ValueError(f"{where}, line {k + 1}: '# BEGIN SOLUTION' inside the region opened on line "
                                 f"{begin[0] + 1}; add '# END SOLUTION' before it (regions cannot nest)")
            begin = (k, b["indent"])
        elif e:
            if begin is None:
                raise ValueError(f"{where}, line {k + 1}: '# END SOLUTION' without a '# BEGIN SOLUTION' before it")
            regions.append((begin[0], k, begin[1]))
            begin = None
        elif _MARKER_LIKE.match(line):
            raise ValueError(f"{where}, line {k + 1}: malformed solution marker {line.strip()!r}; write exactly "
                             "'# BEGIN SOLUTION' or '# END SOLUTION' on a line of its own")
    if begin is not None:
        raise ValueError(f"{where}, line {begin[0] + 1}: '# BEGIN SOLUTION' has no '# END SOLUTION' in the same cell")
    if in_solution and not regions:
        raise ValueError(f"{where}: this code cell is inside the solution of {in_solution} but has no "
                         "'# BEGIN SOLUTION' / '# END SOLUTION' markers, so the student notebook would show "
                         "its code; mark the solution code, or move the cell out of the solution")
    return regions


def _names(code):
    """``(names bound at module level, in order; names read anywhere)`` by ``code`` (magics ignored)."""
    try:
        tree = ast.parse(re.sub(r"(?m)^([ \t]*)[%!].*$", r"\1pass", code))
    except SyntaxError:
        return [], set()
    bound, read = [], set()

    def visit(node, top):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.extend([node.name] if top else [])
            top = False
        elif isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            top = False  # their names are local
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and top:
            bound.extend((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            read.add(node.id)
        elif isinstance(node, ast.Name) and top:
            bound.append(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child, top)

    visit(tree, True)
    return list(dict.fromkeys(bound)), read


def _student_code(cells, where):
    """Student sources of the code cells ``[(index, source, exercise label, regions)]``, in order.

    A region becomes ``# YOUR CODE HERE`` and ``...``; the names its solution binds at top level that
    later code reads, and that nothing bound before, are bound to ``...`` so that later code still runs.
    """
    info = []  # per cell: (lines, names bound / read by the cell without its solutions)
    for _, source, _, regions in cells:
        lines, skeleton, last = source.split("\n"), [], 0
        for b, e, indent in regions:
            skeleton += lines[last:b] + [f"{indent}..."]
            last = e + 1
        info.append((lines, _names("\n".join(skeleton + lines[last:]))))
    out, bound_before = [], set()
    for n, ((index, _, label, regions), (lines, (bound, read))) in enumerate(zip(cells, info)):
        read_later = set().union(read, *(names[1] for _, names in info[n + 1:]))
        bound_before |= set(bound)
        new, last = [], 0
        for b, e, indent in regions:
            solution_binds = _names("\n".join(lines[b + 1:e]))[0] if not indent else []
            needed = [x for x in solution_binds if x in read_later and x not in bound_before]
            bound_before |= set(needed)
            users = [cells[m][0] + 1 for m in range(n + 1, len(cells)) if set(needed) & info[m][1][1]]
            if users:
                warnings.warn(f"{where}: cells {users} read {', '.join(needed)}, which the solution in cell "
                              f"{index + 1} defines; in the student notebook they are `...` until the student "
                              "answers", stacklevel=4)
            exercise = f" (exercise {label})" if label else ""
            new += lines[last:b] + [f"{indent}# YOUR CODE HERE{exercise}: replace the `...` with your solution."]
            new += [f"{indent}{x} = ..." for x in needed] or [f"{indent}..."]
            last = e + 1
        out.append("\n".join(new + lines[last:]))
    return out


def _has_jupytext_header(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return text.startswith("---") and "jupytext:" in text.split("---", 2)[1]


def _convert(path: Path, rel: str, kind: str):
    """The notebook of chapter ``path`` for ``kind`` ('student' or 'instructor'), validated."""
    import jupytext
    import nbformat

    if path.suffix == ".md":
        if not _has_jupytext_header(path):
            raise ValueError(f"{rel} has no jupytext header: a chapter starts with a '---' front matter that "
                             "holds 'jupytext:' and 'kernelspec:'; copy the header of an existing chapter")
    elif path.suffix != ".ipynb":
        raise ValueError(f"{rel}: expected a MyST Markdown (.md) or .ipynb chapter")
    source_nb = jupytext.read(path)
    state = {"solution": None, "opened_at": None, "exercise": None}
    cells, code = [], []  # cells: (index, type, source, metadata); code: (index, source, label, regions)
    for index, cell in enumerate(source_nb.cells):
        where = f"{rel}, cell {index + 1}"
        if cell.cell_type == "markdown":
            prose = _strip_solution_prose(cell.source, state, where)
            cells.append((index, "markdown", prose if kind == "student" else cell.source, cell.metadata))
        else:
            if cell.cell_type == "code":
                regions = _solution_regions(cell.source, where, state["solution"])
                code.append((index, cell.source, state["solution"] or state["exercise"], regions))
            cells.append((index, cell.cell_type, cell.source, cell.metadata))
    if state["solution"] is not None:
        raise ValueError(f"{state['opened_at']}: the solution of {state['solution']} has no {{solution-end}}")
    if kind == "student":
        student = dict(zip((c[0] for c in code), _student_code(code, rel)))
        cells = [(i, t, student.get(i, s), m) for i, t, s, m in cells if t != "markdown" or s.strip()]
    new = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell,
           "raw": nbformat.v4.new_raw_cell}
    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": dict(source_nb.metadata.get("kernelspec") or
                           {"display_name": "Python 3", "language": "python", "name": "python3"}),
        "language_info": {"name": "python"}, "rladder_nb": {"kind": kind, "source": rel}})
    for index, cell_type, source, metadata in cells:
        cell_id = hashlib.sha256(f"{rel}:{index}".encode()).hexdigest()[:12]
        nb.cells.append(new[cell_type](source, metadata=dict(metadata), id=cell_id))
    nbformat.validate(nb)
    return nb


def _toc_notebooks(root: Path) -> list[Path]:
    """The chapters listed in ``root/_toc.yml`` that are notebooks, in the book's order."""
    import yaml

    toc = root / "_toc.yml"
    if not toc.exists():
        raise FileNotFoundError(f"no _toc.yml in {root}: pass the chapter files explicitly (chapters=[...])")

    def walk(node):
        if isinstance(node, dict):
            yield from (node[k] for k in ("root", "file") if k in node)
        for child in node.values() if isinstance(node, dict) else node if isinstance(node, list) else ():
            yield from walk(child)

    files = list(walk(yaml.safe_load(toc.read_text())))
    candidates = [[f] if f.endswith((".md", ".ipynb")) else [f + ".md", f + ".ipynb"] for f in files]
    paths = [next(root / c for c in cs if (root / c).exists()) for cs in candidates
             if any((root / c).exists() for c in cs)]
    return [p for p in paths if p.suffix == ".ipynb" or _has_jupytext_header(p)]


def _select(chapters, root: Path) -> list[Path]:
    if chapters is None:
        found = _toc_notebooks(root)
        if not found:
            raise ValueError(f"_toc.yml in {root} lists no notebook chapter yet: pass chapter files explicitly")
        return found
    if isinstance(chapters, (str, os.PathLike)):
        chapters = [chapters]
    selected, toc = [], None
    for item in chapters:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"chapters must be paths or patterns, got {type(item).__name__}")
        path = Path(item)
        if path.is_file() or (root / path).is_file():
            selected.append((path if path.is_file() else root / path).resolve())
            continue
        toc = _toc_notebooks(root) if toc is None else toc
        names = [p.relative_to(root).as_posix() for p in toc]
        hits = [p for p, n in zip(toc, names) if any(fnmatch.fnmatch(s, str(item))
                                                    for s in (n, n.rsplit(".", 1)[0], Path(n).stem))]
        if not hits:
            raise ValueError(f"{str(item)!r} is neither a file nor a pattern matching a notebook chapter of "
                             f"_toc.yml; the chapters are: {', '.join(names) or 'none yet'}")
        selected.extend(p.resolve() for p in hits)
    if not selected:
        raise ValueError("chapters is empty: give chapter files or patterns, or None for every chapter")
    return list(dict.fromkeys(selected))


def export(outdir, kind: str = "student", chapters=None, root=None) -> list[Path]:
    """Write student and/or instructor notebooks (``.ipynb``, no outputs) of the book's chapters.

    Everything is converted and checked before anything is written; files are written atomically.
    Also available as ``python -m rladder_nb export-notebooks OUTDIR --kind student``. Introduced in
    the appendix *Teaching with this book*.

    Parameters
    ----------
    outdir : str or Path
        The folder to write into; notebooks go to ``outdir/<kind>/<path under book/>.ipynb``
        (chapters outside ``book/`` keep their paths relative to their common folder).
    kind : {"student", "instructor", "both"}
        ``"student"``: solutions blanked, solution prose removed; ``"instructor"``: everything.
    chapters : list of str or Path, optional
        Chapter files and/or glob patterns matched against the chapters of ``_toc.yml`` (e.g.
        ``"book/part1/*"`` or ``"02_*"``); None (the default) exports every notebook chapter.
    root : str or Path, optional
        The book's root folder (default: the repository this package sits in).

    Returns
    -------
    list of Path
        The paths written, in chapter order (students first when ``kind="both"``).
    """
    import nbformat

    from .fileio import atomic_write_bytes

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(outdir, (str, os.PathLike)):
        raise TypeError(f"outdir must be a path, got {type(outdir).__name__}")
    root = Path(ROOT if root is None else root).resolve()
    paths = _select(chapters, root)
    outside = [p.parent for p in paths if not p.is_relative_to(root / "book")]
    base = Path(os.path.commonpath(outside)) if outside else None
    rels = {}
    for p in paths:
        out_rel = p.relative_to(root / "book") if p.is_relative_to(root / "book") else p.relative_to(base)
        if out_rel.with_suffix(".ipynb") in rels.values():
            raise ValueError(f"two chapters would both be written to {out_rel.with_suffix('.ipynb')}")
        rels[p] = out_rel.with_suffix(".ipynb")
    kinds = ("student", "instructor") if kind == "both" else (kind,)
    todo = []
    for k in kinds:
        for p in paths:
            shown = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name
            todo.append((Path(outdir) / k / rels[p], _convert(p, shown, k)))
    for target, nb in todo:
        atomic_write_bytes(target, (nbformat.writes(nb) + "\n").encode("utf-8"))
        os.chmod(target, 0o644)  # the temporary file was private; these notebooks are handed out
    return [target for target, _ in todo]
