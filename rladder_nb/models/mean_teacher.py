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

import torch
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
        # when the consistency cost started (-1: not yet) and the running class cost that decides it;
        # buffers, so that a resumed run continues where it stopped
        self.register_buffer("consistency_start", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("class_cost_average", torch.tensor(float("nan")))

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

    def track_class_cost(self, class_cost, step: int, threshold: float, momentum: float = 0.99) -> None:
        """Update the running average of the student's class cost; once it falls below ``threshold``,
        record ``step`` as the start of the consistency cost (:attr:`consistency_start`, -1 before).

        ``class_cost`` None (a batch without labels) leaves the average as it is.
        """
        if class_cost is None:
            return
        avg = self.class_cost_average
        avg.fill_(float(class_cost) if torch.isnan(avg) else momentum * float(avg) + (1 - momentum) * float(class_cost))
        if int(self.consistency_start) < 0 and float(avg) < threshold:
            self.consistency_start.fill_(int(step))

    def n_parameters(self) -> int:
        """Number of trainable parameters (the student's; the teacher is not trained by gradients)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
