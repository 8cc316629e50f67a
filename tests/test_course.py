"""Tests of rladder_nb.course: exercise checks and student / instructor notebook export.

The export is tested on a small synthetic chapter written here (and on one real chapter of _toc.yml
when there is one): the expected student notebook is written out by hand below, independently of the
code under test, and both notebooks are executed with nbclient.
"""
from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest

from rladder_nb import course
from rladder_nb.__main__ import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chapters import is_notebook, toc_chapters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def code(source: str) -> str:
    return f"```{{code-cell}} ipython3\n{source}\n```"


# The synthetic chapter, cell by cell: (kind, instructor source, student source or None if dropped).
# Every line that belongs to a solution contains the word SECRET; nothing else does.
SETUP = "import numpy as np\nfrom rladder_nb import course\nsamples = np.arange(4)"
CELLS = [
    ("markdown", "(ch-synthetic)=\n# A synthetic chapter\n\n```{admonition} In this chapter\n:class: tip\n"
                 "Goals.\n```", "same"),
    ("code", ":tags: [hide-input]\n" + SETUP, "same"),
    # exercise 1: a gated solution whose prose holds a nested code fence; the solution's answer is
    # checked in the same cell, so the student placeholder must bind it
    ("markdown", "```{exercise}\n:label: ex-one\nCompute the posterior mean.\n```\n"
                 "```{solution-start} ex-one\n:class: dropdown\n```\nSECRET prose: we solve it as\n\n"
                 "```python\nSECRET fenced example\n```",
     "```{exercise}\n:label: ex-one\nCompute the posterior mean.\n```"),
    ("code", "# BEGIN SOLUTION\nposterior_mean = np.array([1.0, 2.0])  # SECRET\n# END SOLUTION\n"
             "course.check_close(posterior_mean, [1.0, 2.0], name='posterior mean')",
     "# YOUR CODE HERE (exercise ex-one): replace the `...` with your solution.\nposterior_mean = ...\n"
     "course.check_close(posterior_mean, [1.0, 2.0], name='posterior mean')"),
    # prose that shows the markers in a Markdown code block is not a solution
    ("markdown", "```{solution-end}\n```\n\nSolutions sit between markers:\n\n"
                 "```python\n# BEGIN SOLUTION\n# END SOLUTION\n```",
     "Solutions sit between markers:\n\n```python\n# BEGIN SOLUTION\n# END SOLUTION\n```"),
    # exercise 2: a solution of two code cells with prose between them; an indented region; a name
    # bound before the solution (`samples`) must not be replaced by `...`
    ("markdown", "```{exercise}\n:label: ex-two\nWrite `double` and rescale `samples`.\n```\n"
                 "```{solution-start} ex-two\n:class: dropdown\n```",
     "```{exercise}\n:label: ex-two\nWrite `double` and rescale `samples`.\n```"),
    ("code", "def double(x):\n    # BEGIN SOLUTION\n    return 2 * x  # SECRET\n    # END SOLUTION",
     "def double(x):\n    # YOUR CODE HERE (exercise ex-two): replace the `...` with your solution.\n    ..."),
    ("markdown", "SECRET prose between the two code cells of a solution.", None),
    ("code", "# BEGIN SOLUTION\nsamples = samples * 2  # SECRET\nscratch = 1  # SECRET\n# END SOLUTION",
     "# YOUR CODE HERE (exercise ex-two): replace the `...` with your solution.\n..."),
    ("markdown", "```{solution-end}\n```", None),
    ("code", "print(double(3), samples.sum())", "same"),
    # exercise 3: an inline {solution} (prose only) and a fill-in cell outside any solution
    ("markdown", "```{exercise}\n:label: ex-three\nFill in `x`.\n```\n\n"
                 "````{solution} ex-three\n:class: dropdown\nSECRET: ones.\n```python\nSECRET\n```\n````",
     "```{exercise}\n:label: ex-three\nFill in `x`.\n```"),
    ("code", "x = np.zeros(3)\n# BEGIN SOLUTION\nx[:] = 1  # SECRET\n# END SOLUTION\n"
             "course.check_shape(x, (3,), name='x')",
     "x = np.zeros(3)\n# YOUR CODE HERE (exercise ex-three): replace the `...` with your solution.\n...\n"
     "course.check_shape(x, (3,), name='x')"),
    ("markdown", "## Summary\n\n- done", "same"),
]


def write_chapter(path: Path, cells=CELLS) -> Path:
    parts, last = [], None
    for kind, source, _ in cells:
        if kind == "markdown" and last == "markdown":
            parts.append("+++")
        parts.append(code(source) if kind == "code" else source)
        last = kind
    path.write_text(HEADER + "\n" + "\n\n".join(parts) + "\n")
    return path


def strip_options(source: str) -> str:
    """The cell source as the notebook holds it: the code-cell options (``:tags:``) become metadata."""
    return re.sub(r"^:tags: \[.*\]\n", "", source)


@pytest.fixture
def chapter(tmp_path):
    (tmp_path / "src").mkdir()
    return write_chapter(tmp_path / "src" / "synthetic.md")


def load(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def test_instructor_export_keeps_every_cell_without_outputs(chapter, tmp_path):
    (path,) = course.export(tmp_path / "out", "instructor", [chapter])
    assert path == tmp_path / "out" / "instructor" / "synthetic.ipynb"
    nb = load(path)
    assert [c.cell_type for c in nb.cells] == [k for k, _, _ in CELLS]
    assert [c.source for c in nb.cells] == [strip_options(s) for _, s, _ in CELLS]
    assert nb.cells[1].metadata["tags"] == ["hide-input"]
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_student_export_blanks_every_solution_and_nothing_else(chapter, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing in this chapter calls for a warning
        paths = course.export(tmp_path / "out", "both", [chapter])
    student, instructor = (load(p) for p in paths)
    expected = [(k, strip_options(s) if want == "same" else want) for k, s, want in CELLS if want is not None]
    assert [(c.cell_type, c.source) for c in student.cells] == expected
    # every student cell is the instructor cell with the same id; the others are solution prose only
    by_id = {c.id: c for c in instructor.cells}
    assert all(c.id in by_id and by_id[c.id].cell_type == c.cell_type for c in student.cells)
    dropped = [c.source for c in instructor.cells if c.id not in {s.id for s in student.cells}]
    assert dropped == [s for _, s, want in CELLS if want is None]
    text = json.dumps(student)
    assert "SECRET" not in text and "solution-start" not in text and "solution-end" not in text
    assert json.dumps(instructor).count("SECRET") == sum(s.count("SECRET") for _, s, _ in CELLS)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]  # no temp files left


def test_both_notebooks_run(chapter, tmp_path):
    from nbclient import NotebookClient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = course.export(tmp_path / "out", "both", [chapter])
    outputs = {}
    for path in paths:
        nb = load(path)
        NotebookClient(nb, timeout=60, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs[path.parent.name] = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                                            for o in c.outputs)
    assert "✓ posterior mean is correct" in outputs["instructor"]
    assert "6 12" in outputs["instructor"]  # double(3), sum of samples * 2
    assert "… posterior mean: not answered yet" in outputs["student"]
    assert "None 6" in outputs["student"]  # the blank `double` returns None; samples untouched
    assert "✓ x has the right shape (3,)" in outputs["student"]


def test_names_that_later_cells_read_are_bound_and_reported(tmp_path):
    cells = CELLS[:2] + [("markdown", "```{solution-start} ex-x\n```", None),
                         ("code", "# BEGIN SOLUTION\nanswer, unused = 42, 0\ndef helper():\n    pass\n"
                                  "# END SOLUTION", None),
                         ("markdown", "```{solution-end}\n```", None), ("code", "print(answer, helper)", None)]
    with pytest.warns(UserWarning, match=r"cells \[6\] read answer, helper, which the solution in cell 4"):
        (path,) = course.export(tmp_path / "out", "student", [write_chapter(tmp_path / "c.md", cells)])
    assert load(path).cells[2].source == ("# YOUR CODE HERE (exercise ex-x): replace the `...` with your solution.\n"
                                          "answer = ...\nhelper = ...")


BAD = {
    "BEGIN without END": ("code", "# BEGIN SOLUTION\nx = 1", "has no '# END SOLUTION'"),
    "END without BEGIN": ("code", "x = 1\n# END SOLUTION", "without a '# BEGIN SOLUTION'"),
    "nested BEGIN": ("code", "# BEGIN SOLUTION\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n# END SOLUTION",
                     "cannot nest"),
    "malformed marker": ("code", "# BEGIN SOLUTION:\nx = 1\n# END SOLUTION", "malformed solution marker"),
    "solution-start without end": ("markdown", "```{solution-start} ex-x\n```\nprose", "has no {solution-end}"),
    "solution-end without start": ("markdown", "```{solution-end}\n```", "without a {solution-start}"),
    "nested solution-start": ("markdown", "```{solution-start} ex-x\n```\n```{solution-start} ex-y\n```\n"
                                          "```{solution-end}\n```", "opens inside the solution of ex-x"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("kind", ["student", "instructor"])
def test_bad_markers_raise_clear_errors_and_write_nothing(case, kind, tmp_path):
    cell_kind, source, message = BAD[case]
    good = write_chapter(tmp_path / "a.md")
    bad = write_chapter(tmp_path / "b.md", CELLS[:2] + [(cell_kind, source, None)])
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        course.export(tmp_path / "out", kind, [good, bad])
    assert "b.md, cell 3" in str(err.value)
    assert not (tmp_path / "out").exists()  # the good chapter was not written either


def test_unmarked_code_inside_a_solution_is_refused(tmp_path):
    cells = CELLS[:2] + [("markdown", "```{solution-start} ex-x\n```", None), ("code", "x = 1  # SECRET", None),
                         ("markdown", "```{solution-end}\n```", None)]
    with pytest.raises(ValueError, match="inside the solution of ex-x but has no"):
        course.export(tmp_path / "out", "student", [write_chapter(tmp_path / "c.md", cells)])


def test_chapter_without_jupytext_header_is_refused(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Just a page\n\nNo header.\n")
    with pytest.raises(ValueError, match="no jupytext header"):
        course.export(tmp_path / "out", "student", [page])


def test_bad_arguments(chapter, tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        course.export(tmp_path, "teacher", [chapter])
    with pytest.raises(TypeError, match="outdir must be a path"):
        course.export(3, "student", [chapter])
    with pytest.raises(ValueError, match="neither a file nor a pattern"):
        course.export(tmp_path, "student", ["no_such_chapter_*"])
    with pytest.raises(ValueError, match="chapters is empty"):
        course.export(tmp_path, "student", [])
    with pytest.raises(TypeError, match="chapters must be paths"):
        course.export(tmp_path, "student", [3])


def test_command_line(chapter, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["export-notebooks", str(tmp_path / "out"), "--kind", "both", "--chapters", str(chapter)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "out" / k / "synthetic.ipynb") for k in ("student", "instructor")]
    assert main(["export-notebooks", str(tmp_path / "out"), "--chapters", str(tmp_path / "none.md")]) == 2
    assert "neither a file nor a pattern" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export-notebooks", str(tmp_path / "out"), "--kind", "teacher"])


@pytest.mark.chapter
def test_a_real_chapter(tmp_path, monkeypatch):
    """The first notebook chapter of _toc.yml: no solution line reaches students, and their notebook runs."""
    from nbclient import NotebookClient

    real = [p for p in toc_chapters() if p.suffix == ".md" and is_notebook(p)]
    if not real:
        pytest.skip("_toc.yml lists no notebook chapter yet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        student, instructor = (load(p) for p in course.export(tmp_path, "both", [ROOT / real[0]]))
    solution, elsewhere = set(), set()
    for cell in instructor.cells:
        inside = False
        for line in cell.source.split("\n") if cell.cell_type == "code" else ():
            inside = (inside or line.strip() == "# BEGIN SOLUTION") and line.strip() != "# END SOLUTION"
            (solution if inside else elsewhere).add(line)
    solution -= elsewhere | {"", "# BEGIN SOLUTION", "..."}
    assert not solution & {line for c in student.cells for line in c.source.split("\n")}
    assert "{solution-start}" not in json.dumps(student)
    monkeypatch.setenv("RLADDER_NB_SCALE", "smoke")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(student, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str((ROOT / real[0]).parent)}}).execute()


# ---------------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------------


def test_check_close_agrees_with_the_tolerance_formula(capsys):
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(4, 5))
    rtol, atol = 1e-3, 1e-6
    for trial in range(20):
        factor = rng.choice([0.5, 2.0])  # well inside or well outside the allowed band
        value = expected + factor * (atol + rtol * np.abs(expected)) * rng.choice([-1, 1], size=expected.shape)
        value = np.where(rng.random(expected.shape) < 0.8, expected, value)
        ok = bool(np.all(np.abs(value - expected) <= atol + rtol * np.abs(expected)))
        if ok:
            course.check_close(value, expected, rtol=rtol, atol=atol, name="estimate")
            assert "✓ estimate is correct" in capsys.readouterr().out
        else:
            with pytest.raises(AssertionError, match="not close enough"):
                course.check_close(value, expected, rtol=rtol, atol=atol, name="estimate")


def test_check_close_says_where_and_what():
    expected = np.zeros((2, 3))
    value = expected.copy()
    value[0, 1], value[1, 2] = 0.1, -0.5
    with pytest.raises(AssertionError) as err:
        course.check_close(value, expected, name="posterior mean", hint="use the precision matrix")
    message = str(err.value)
    assert "posterior mean" in message and "2 of 6 entries differ" in message and "(1, 2)" in message
    assert "got -0.5, expected 0.0" in message and "Hint: use the precision matrix" in message
    with pytest.raises(AssertionError, match=re.escape("expected shape (2, 3), got shape (3, 2)")):
        course.check_close(value.T, expected)
    with pytest.raises(AssertionError, match="got nan"):
        course.check_close(float("nan"), 1.0)
    with pytest.raises(AssertionError, match="a number or an array of numbers, got str"):
        course.check_close("0.5", 0.5)


def test_check_close_accepts_tensors_nans_and_placeholders(capsys):
    torch = pytest.importorskip("torch")
    course.check_close(torch.ones(3, requires_grad=True) * 2, [2, 2, 2])
    course.check_close([1.0, np.nan], [1.0, np.nan], name="with nan")
    course.check_close(..., 1.0, name="variance")
    out = capsys.readouterr().out
    assert out.count("✓") == 2 and "… variance: not answered yet" in out


@pytest.mark.parametrize("kwargs, error", [
    ({"rtol": -1}, ValueError), ({"atol": float("inf")}, ValueError), ({"name": 3}, TypeError),
    ({"name": ""}, TypeError), ({"hint": 1}, TypeError)])
def test_check_close_bad_options(kwargs, error):
    with pytest.raises(error):
        course.check_close(1.0, 1.0, **kwargs)
    with pytest.raises(TypeError, match="use check_equal"):
        course.check_close(1.0, "one")


def test_check_equal_and_check_shape(capsys):
    course.check_equal("ladder", "ladder")
    course.check_equal({"a": 1}, {"a": 1})
    course.check_equal(np.array([1, 2, 3]), [1, 2, 3])
    with pytest.raises(AssertionError, match=re.escape("1 of 3 entries differ; the first at index (2,): got 4")):
        course.check_equal(np.array([1, 2, 4]), [1, 2, 3], name="labels")
    with pytest.raises(AssertionError, match="expected 'ladder', got 'adder'"):
        course.check_equal("adder", "ladder")
    with pytest.raises(AssertionError, match="expected shape"):
        course.check_equal(np.array([3, 3]), 3)
    course.check_shape(np.zeros((5, 3)), (None, 3))
    with pytest.raises(AssertionError, match="dimension 1 is 4, expected 3"):
        course.check_shape(np.zeros((5, 4)), (None, 3), name="features")
    with pytest.raises(AssertionError, match=re.escape("expected 2 dimensions, shape (any, 3); got 1")):
        course.check_shape(np.zeros(3), (None, 3))
    with pytest.raises(ValueError, match="expected_shape"):
        course.check_shape(np.zeros(3), (-1,))
    course.check_shape(..., (3,), name="h")
    out = capsys.readouterr().out
    assert out.count("✓") == 4 and "… h: not answered yet" in out


def test_check_picks_tolerant_or_exact(capsys):
    course.check(0.1 + 0.2, 0.3)  # floats: within tolerance
    course.check([1, 2], [1, 2])  # integers: exact
    with pytest.raises(AssertionError):
        course.check(np.array([1, 3]), [1, 2])
    with pytest.raises(AssertionError, match="not close enough"):
        course.check(1.1, 1, rtol=0.01)  # a tolerance asks for check_close
    course.check("a", "a")
    assert capsys.readouterr().out.count("✓") == 3
