"""Mean Teacher (Tarvainen & Valpola 2017): a student network and its weight-averaged teacher, as one module.

Introduced in *Semi-supervised learning with Mean Teacher* (``book/part2/07_semi_supervised.md``).

The *student* is any registered network of the package (an :class:`~rladder_nb.models.rladder.RLadder`,
a :class:`~rladder_nb.models.video.StaticClassifier` or a
:class:`~rladder_nb.models.video.TemporalBaseline`); the *teacher* is a copy of it whose weights are not
trained by gradients but follow the student's as an exponential moving average
(:func:`rladder_nb.training.ema_update`). The consistency cost that makes the student agree with the
teacher lives in the experiment (:mod:`rladder_nb.experiments.occluded_mnist_semi`); this module only holds
the two networks, so that one checkpoint saves and resumes both. ``forward`` runs the student.
"""
from __future__ import annotations

import copy

from torch import nn

from ..training import MODEL_CLASSES, ema_update, register_model
from . import rladder, video  # noqa: F401  (registers the student classes)


@register_model
class MeanTeacher(nn.Module):
    """A student network and its exponential-moving-average teacher.

    Parameters
    ----------
    student_class : str
        The registered class name of the student (``'RLadder'``, ``'StaticClassifier'``,
        ``'TemporalBaseline'``).
    student_config : dict
        The student's ``config`` (its constructor's arguments).
    """

    def __init__(self, student_class: str, student_config: dict):
        super().__init__()
        if student_class not in MODEL_CLASSES or student_class == type(self).__name__:
            known = sorted(c for c in MODEL_CLASSES if c != type(self).__name__)
            raise ValueError(f"unknown student class {student_class!r}: expected one of {known}")
        if not isinstance(student_config, dict):
            raise TypeError(f"student_config must be a dict, got {type(student_config).__name__}")
        self.student = MODEL_CLASSES[student_class](**student_config)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.config = dict(student_class=student_class, student_config=self.student.config)

    @classmethod
    def around(cls, student: nn.Module) -> "MeanTeacher":
        """A Mean Teacher whose student has ``student``'s class, config and weights (teacher = a copy)."""
        mt = cls(type(student).__name__, student.config)
        mt.student.load_state_dict(student.state_dict())
        mt.teacher.load_state_dict(student.state_dict())
        return mt

    def forward(self, *args, **kwargs):
        """The student's forward pass."""
        return self.student(*args, **kwargs)

    def update_teacher(self, decay: float) -> None:
        """``teacher <- decay * teacher + (1 - decay) * student``, weight by weight."""
        ema_update(self.teacher, self.student, decay)

    def n_parameters(self) -> int:
        """Number of trainable parameters (the student's; the teacher is not trained by gradients)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
