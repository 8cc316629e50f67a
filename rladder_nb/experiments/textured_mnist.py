"""Experiment ``textured_mnist``: perceptual grouping by texture (the paper's Section 4.2, Table 4).

Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).

* **Data.** :func:`~rladder_nb.data.textured_mnist.load_textured_mnist` in the ``supervised`` (all
  training examples labelled) or ``semi_supervised`` setting (:data:`DATASETS`), sizes per scale from
  :data:`~rladder_nb.data.textured_mnist.SIZES`. The data are a fixed function of :data:`DATA_SEED` (the
  training seed changes the initialisation and the batch order only). Textures: the free bank at smoke
  and book scale (the book builds without the Brodatz album), ``auto`` (the album when present) at paper
  scale; the config records which.
* **Control** ``gratings`` (:data:`CONTROLS`, ``--dataset gratings``; not part of Table 4): the fully
  supervised setting on Tagger's own textured MNIST, its released "Freq20" data -- the 20 sinusoidal
  gratings of :func:`~rladder_nb.data.textures.grating_textures`, plain crops (no rotation or scaling),
  digits not thickened, soft masks (the digit's intensity). A group that has found its grating's
  frequency can reconstruct it anywhere, so if these models group at all at a budget, they should here.
* **Models.** ``rtagger`` / ``tagger``: :class:`~rladder_nb.models.tagger.Tagger` with engine
  ``rladder`` / ``ladder``, K groups, a few iterations, the class cost at the last iteration; the input is
  the clean image plus Gaussian noise (std ``noise_std``), the low-level cost the Tagger cost against the
  clean image. ``convnet``: :class:`~rladder_nb.models.video.StaticClassifier` (the RLadder encoder's
  layers, feed-forward) on the noisy image, labelled examples only, with more steps
  (:data:`CONVNET_STEPS`: it is far cheaper per step).
* **Semi-supervised.** Each batch holds ``labelled_per_batch`` labelled examples and the rest unlabelled
  ones (label -1: the Tagger cost only).
* **Starting masks in training** (``train_start``, a diagnostic for study runs): ``'random'`` (Tagger's
  training, every recorded entry) or ``'ground_truth'`` -- every training example starts from its true segmentation
  (:func:`~rladder_nb.models.tagger.starting_masks`), which shows the model the split the cost should
  reward (and the digit's outline with it), e.g. ``--set train_start=ground_truth``.
* **Masks held fixed** (``hold_masks``, a diagnostic for study runs, default ``False``): with ``True`` the
  starting masks stay as they are at every iteration, in training and in :func:`predict` (the mask head is
  unused), so the engine only reconstructs. With ``train_start=ground_truth`` it learns to denoise with the
  true split handed over, with ``one_group`` without any split; the difference of the two Tagger costs is
  what a correct split is worth to that engine -- the reward grouping would have to earn.
* **Binary images** (``likelihood``, a study option, default ``'gaussian'``): with ``'bernoulli'`` the images
  are binarised at 0.5 and corrupted by bit flips of probability ``flip_prob`` (0.2), and the Tagger runs
  its binary loop with the cross-entropy cost (:func:`~rladder_nb.models.tagger.mixture_cost`), as on
  Tagger's Shapes (:mod:`~rladder_nb.experiments.shapes`), e.g. ``--dataset gratings --set
  likelihood=bernoulli``.
* **Metrics.** ``ami`` per iteration (Tagger convention: pixels whose true mask exceeds 0.9, background a
  group; :func:`rladder_nb.metrics.adjusted_mutual_information`), ``classification_error`` (%) per
  iteration (the ConvNet: one value), on the fixed test split with seeded noise and initial masks.
* Sizes, layers and hyper-parameters are our reconstruction (the paper's Appendix D.3 is unavailable).
* **Measured at book scale** (1,200 steps, 5 to 9 minutes on one thread; 20,000 training examples since
  the ConvNet overfitted the earlier 3,000, see :data:`~rladder_nb.data.textured_mnist.SIZES`): grouping has
  not emerged (recorded, seed 0, last iteration: RTagger AMI 0.034 supervised, 0.033 semi-supervised;
  Tagger 0.001). The RTagger's class cost stays at ln 10 (90 % error); the Tagger's leaves it (62.3 %
  error); the ConvNet on the same encoder layers leaves ln 10 after about 1,000 steps (43.6 % error after
  6,000).
* **More seeds** (recorded: fully supervised seeds 1 and 2 of all three models, semi-supervised seed 1 of
  the RTagger and the ConvNet; they repeat the pilots that came first). Tagger seed 1: 73.0 / 65.7 / 65.5 %
  error over the iterations, AMI 0.010 / 0.013 / 0.021, its class cost below ln 10 from about step 500;
  seed 2 stays at ln 10: 90.9 % at every iteration, AMI 0.014 / 0.017 / 0.019. RTagger seeds 1 / 2: 90.0 /
  90.9 % at the last iteration, AMI 0.023 / 0.032, the class cost at ln 10 to the last step; semi-supervised
  seed 1: 90.9 %, AMI 0.027. ConvNet: 43.8 / 43.3 % (semi-supervised seed 1: 87.0 %). The Tagger leaves the
  plateau within 1,200 steps in two seeds of three, the RTagger in none of five runs. Means over seeds
  (fully supervised, last iteration): AMI RTagger 0.030, Tagger 0.014; error RTagger 90.3 %, Tagger
  72.9 %, ConvNet 43.6 %.
* **Is the RTagger's small rise in AMI real?** Per image, on the 1,000 test images (:func:`predict` on each
  recorded entry, the per-image AMI of the last iteration minus the first's, mean +- standard error; a
  throw-away script, the values only here): fully supervised seeds 0 / 1 / 2 +0.0111 +- 0.0005, +0.0036 +-
  0.0003, +0.0091 +- 0.0004, the AMI rising on 77 / 67 / 77 % of the images; semi-supervised seeds 0 / 1
  +0.0088 +- 0.0005 and +0.0023 +- 0.0003 (74 / 59 %); the gratings control +0.0043 +- 0.0003 (67 %). The
  Tagger's: -0.0006 +- 0.0001, +0.0110 +- 0.0007, +0.0055 +- 0.0004 (gratings -0.0000 +- 0.0001). Every
  RTagger run improves its segmentation over the iterations, on most images and by many standard errors,
  but by about 0.01 from near chance: the iterations refine a segmentation that does not follow the digit.
* **LayerNorm in the dense top cell** (``norm='layer'``; pilots, seed 0, 1,000 steps, 1,000 test images):
  both stay at ln 10 -- Tagger 88.0 % error, AMI 0.002; RTagger 89.3 %, AMI 0.005. Nor do residual cells
  (``cell='reslstm'``, the Occluded Moving MNIST chapter's, whose feed-forward path let the temporal
  baseline and the hierarchical RNN leave their plateau there; 1,200 steps): RTagger seed 0 90.8 %, AMI
  0.029; Tagger seed 2 (its stalled seed) 90.0 %, AMI 0.009. And at initialisation
  (book config, seeds 0 and 1, one batch of 64) the class cost's gradient is 1.5-4x *larger* in the
  RTagger's encoder weights and classifier than in the Tagger's, so a weak initial class signal does not
  explain its stall. (The Tagger cost's gradient, by contrast, is exactly zero in every engine weight
  but the bottom combinator's at initialisation: the combinators start with their top-down inputs
  closed, ``w_0u = 0``, so ``d_0`` is a function of the engine's input alone until they open.)
* **Head normalisation** (:data:`HEAD_NORM`, ``head_norm='tagger'``, as in the Tagger's released code).
  Without it the K groups settle at once on a symmetric solution -- near-uniform masks, every group
  reconstructing the whole image -- and the RTagger's AMI stays at 0.002-0.003 (recorded entries before this
  change). With it, a 600-step pilot reached AMI 0.022 / 0.033 / 0.039 over the three iterations (300 test
  images); the groups then split the image into blobs that do not follow the digit (a spatial partition,
  each group reconstructing its own patches), so the AMI is still close to chance. Pilots (seed 0, 300 test
  images, AMI at the last iteration): 3,000 steps 0.032 (class cost at ln 10); 6,000 steps 0.033, where the
  class cost leaves ln 10 only after about 4,500 steps (2.18 averaged over the last 750) and the error ends
  at 78.7 %; the rest with the class cost at ln 10: the class cost alone (no denoising cost), 1,500 steps:
  class cost still at ln 10 (likely because at the first iteration the inputs carry the image only through
  the random masks, ``m_k (x - z_k)``, and ``z_k`` is not trained to reconstruct without the denoising
  cost); class weight 10: 0.005; the Occluded Moving MNIST chapter's residual cells, gated links and zero
  biases: 0.003; gated decoder-to-encoder links alone (1,200 steps): 0.037; the class cost at every
  iteration instead of the last (1,200 steps): 0.037. So the RTagger's class cost stalls for thousands of
  steps where the Tagger's leaves ln 10 within 1,200 (62.3 % error), whether or not the RTagger's links are
  gated; the remaining difference is the state the RLadder carries across iterations. Earlier 600-step
  pilots without the normalisation did not break the symmetry either: lr 2e-3 with noise 0.3; a residual
  mask update; residual cells with gated links, with the default and with finer textures
  (``texture_scale_range=(0.25, 0.5)``); no lateral connection at the input. All are config choices
  (defaults: plain LSTM cells, ungated links, :data:`~rladder_nb.data.textures.DEFAULT_SCALE_RANGE`).
* **Controls** (pilots with head normalisation, seed 0, 1,200 steps, 300 test images, AMI and error at the
  last iteration). *Flat textures* -- each of the 20 textures replaced by a constant grey level from 0.05 to
  0.95, so that digit and background differ only in brightness: the class cost leaves ln 10 after about 750
  steps (41.3 % error) but the groups form the same spatial patches (AMI 0.040; mean largest mask 0.49
  against 1/K = 0.33): when every group can denoise every pixel, the Tagger cost is the same for any split,
  and nothing pushes the groups towards objects. *Which part of the RTagger stalls the class cost* (real
  textures): the encoder state reset at every iteration with the decoder-to-encoder links kept: 88.3 %
  error, AMI 0.020; the state carried without the links: 91.7 %, 0.040; zero-initialised biases
  (``zero_bias_init=True``): 92.7 %, 0.032 -- the class cost at ln 10 in all three, so neither the state
  nor the links alone explain why the Tagger's class cost leaves ln 10 within 1,200 steps and the
  RTagger's does not. *A fully-connected engine* (layers dense 512, 256, 64; the Tagger's released code is
  fully connected, 3000-2000-1000 units pretrained without labels for 150 epochs): AMI 0.000, 91.7 %
  error -- a dense network cannot denoise locally, but at this budget it does not group either.
  *The ConvNet at the Taggers' 1,200 steps* (instead of :data:`CONVNET_STEPS`' 6,000; seeds 0 / 1 / 2):
  88.3 / 86.7 / 84.6 % error, its class cost leaving ln 10 only at about step 1,000.
  *The Tagger cost alone* (no labels, as the released code pretrains), 3,000 steps: RTagger AMI 0.021,
  0.028, 0.031 over the iterations; Tagger 0.002, 0.002, 0.001 (tagger cost -1.50 and -1.46 at the end).
* **Tagger's own textures** (the recorded ``gratings`` control, seed 0, last iteration): RTagger AMI
  0.020, error 90.0 %; Tagger AMI 0.000, error 63.3 %; ConvNet 38.8 % -- the picture of our textures
  (RTagger 0.034 / 90.0 %, Tagger 0.001 / 62.3 %, ConvNet 43.6 %), so at this budget the textures are not
  the cause. Further pilots (seed 0, 1,000 test images, last iteration; not recorded):
  *longer training* -- the Tagger for 8,000 steps on our textures (``--set n_steps=8000``, 47 minutes):
  its class cost falls on (1.06 over the last 1,000 steps) and the error to 49.3 %, still above the
  ConvNet's, while its AMI stays at 0.001; the RTagger for 6,000 steps on the gratings control
  (``--dataset gratings --set n_steps=6000``): its denoising cost falls on (-1.77 over
  the last 1,000 steps, -1.36 around step 1,000), but its class cost stays at ln 10 for all 6,000 steps
  (90.3 % error) and its AMI at 0.018 (42 minutes). *Batch normalisation over examples and groups*
  in the engine's cells (batch statistics in place of the cells' GroupNorm, as in the Ladder inside
  Tagger's released code, which normalises each feature over the minibatch and the K groups together;
  GroupNorm normalises each group's copy on its own, and so hides how much of the input a group holds;
  1,200 steps, a patched cell, not a package option): RTagger AMI 0.028, error 89.2 % on our textures;
  0.021 on gratings cut with sub-pixel offsets (an earlier version of the control whose interpolation
  blurred the finest gratings): no change.
* **Handed the true segmentation** (:func:`start_study`, the seed-0 zoo entries, the first 300 test images;
  the chapter computes it): started from the true masks instead of random ones, every model's Tagger cost
  is *higher* than from the random start at every iteration (RTagger on our textures 1.97 / -0.47 / -1.02
  against -1.26 / -1.30 / -1.30; Tagger -0.56 / -1.06 / -1.24 against -1.23 / -1.28 / -1.28; the same on
  the gratings), and the AMI falls from 1 at the start to 0.61 / 0.20 / 0.54 (RTagger) and
  0.53 / 0.44 / 0.06 (Tagger); on the gratings 0.19-0.23 and 0.17 -> 0.05. The Tagger's first-iteration
  error drops from 87.7 to 60.3 % with the true start. The trained models have learned to denoise under
  random masks; a correct split costs them more, so they are not near a grouping solution.
* **Heavier input noise** (study runs, ``--dataset gratings --set noise_std=0.5``, seed 0, 1,200 steps, 1,000
  test images): with the noise's std as large as the gratings' amplitude, a pixel denoised from its
  neighbourhood alone stays noisy, while a group that has found its grating's frequency and phase could denoise it
  from the whole region -- the pressure towards grouping by texture that Tagger relies on. RTagger AMI
  0.016 / 0.017 / 0.019, error 90.3 %; Tagger AMI 0.005 / 0.005 / 0.004, error 91.7 % (at chance,
  where with the usual noise it reaches 63.3 %). No grouping at this budget.
* **No lateral connections below the top** (pilots, gratings, seed 0, 1,200 steps, 1,000 test images; a
  patched engine, not a package option): every combinator but the top one gets a zero lateral input, so a
  group's reconstruction must pass through the 64-unit top -- an autoencoder per group, which cannot copy
  detail from below and so (one might hope) gains from holding one texture only. RTagger: AMI 0.000,
  error 90.3 %, and the same Tagger cost (-0.557) from every start: its outputs no longer depend on the
  masks. Tagger: AMI -0.001, error 90.4 %, Tagger cost -0.97 (-1.31 with the laterals). Both learn less,
  and neither groups.
* **Trained from the true segmentation** (study runs, ``--set train_start=ground_truth``, our textures, fully
  supervised, seed 0, 1,200 steps; :func:`start_study` on the first 300 test images, per iteration). RTagger
  from the true start: cost -1.25 / -1.28 / -1.29 (the recorded RTagger from random masks: -1.26 / -1.30 /
  -1.30), AMI 0.90 / 0.69 / 0.04, error 3.3 / 3.0 / 3.3 %; from random masks it is lost (cost 1.13 / -0.14 /
  -0.72, AMI 0.005, 88 % error). Tagger from the true start: cost -0.70 / -1.34 / -1.35, AMI 0.10 / 0.01 /
  0.00, error 12.7 / 4.0 / 2.7 %; from everything in one group the same cost (-0.41 / -1.35 / -1.35) at
  85 % error. Handed the split at every step, the models read the digit from the masks (its outline) but
  do not keep the split, and their cost does not depend on it: free to move the masks, these engines find
  no use for a split by texture (the next point measures why).
* **A sanity check of the loop** (experiment :mod:`~rladder_nb.experiments.shapes`): on Tagger's own Shapes,
  binary images corrupted by bit flips, with the released code's binary loop and fully-connected engines,
  the same Tagger and RTagger do group at book scale in three runs of four (AMI rising to 0.47, 0.17 and 0.19
  over the iterations; 0.03 in the fourth), and with this experiment's Gaussian noise on the same images
  they do not (0.01); with Gaussian noise of std 0.6, which a pixel's own value undoes as rarely as a bit
  flip, they group again (see the ``shapes`` experiment).
* **Bit flips on textures** (study runs of the binary option, ``--dataset gratings --set likelihood=bernoulli``,
  seed 0, 1,000 test images, per iteration). The book's engine with labels, 1,200 steps (7 minutes): AMI
  0.000 / 0.001 / 0.001, error 91.3 / 90.8 / 90.4 % (63.3 % with the Gaussian loop). The Shapes experiment's
  fully-connected engine (``--set 'layers=[["dense",500,1,3],["dense",250,1,3],["dense",100,1,3]]' --set
  norm=layer``) without labels (``--set class_weight=0``), 5,000 steps (21 minutes): AMI 0.000 at every
  iteration. The corruption that makes the Shapes split pay does not make this one pay: the groups keep
  much of their random start instead (on the first 300 test images the last iteration's winning group is the
  starting one at 59 % and 49 % of the pixels, 93 % after the dense engine's second iteration; chance is
  33 %) -- any split denoises the stripes as well as any other.
* **The flat control** (``--dataset flat``, :data:`CONTROLS`: each texture a constant grey level from 0.05
  to 0.95, :func:`~rladder_nb.data.textures.flat_textures`; the same digits and masks; study runs of the
  Tagger, noise 0.2, 1,000 test images). Two random levels differ by about 0.3, and against that contrast a
  noise of 0.2 moves a pixel past the midpoint about as often as 0.6 does on Shapes. The book's engine with
  labels, seed 0, 1,200 steps: AMI 0.004 / 0.004 / 0.008, error 30.1 / 25.3 / 23.4 %. The Shapes engine
  (dense 500-250-100, LayerNorm) without labels, 5,000 steps: seed 0 0.016 / 0.019 / 0.020, seed 1 0.042 /
  0.065 / 0.072 (19-24 minutes). The masks stay close to uniform (seed 0) or split the canvas into its
  border and its centre (seed 1), not the digit from its background. (An earlier flat pilot, described
  under *Controls* above, was a patched texture bank with 300 test images; this control replaces it.)
* **What a split is worth** (study runs of the Tagger, ``--set hold_masks=true`` with ``train_start`` the true
  segmentation or one group, the Tagger cost alone (``--set class_weight=0``, as the released code
  pretrains), seed 0, 1,200 steps; the last iteration's Tagger cost on 1,000 test images from the start it
  was trained with, lower is better). Each row: the true split held fixed / everything in one group held /
  masks free from random ones (Tagger's training; its AMI).
  Gratings, the book's engine: -1.270 / -1.138 / -1.439 (AMI 0.001). Gratings, a fully-connected engine
  (dense 1000, 500, 250; 15-26 minutes per run): -1.204 / -1.039 / -1.166 (AMI 0.000). Our textures, the
  book's engine: -1.380 / -0.958 / -1.352 (AMI 0.001); the RTagger there (``--model rtagger``): -1.363 /
  -1.219 / -1.294 (AMI 0.035).
  The cost does reward a correct split: held fixed it is worth 0.13 (gratings) and 0.42 (our textures) nats
  per pixel over none to the Tagger's convolutional engine, 0.17 to the fully-connected one, 0.14 to the
  RTagger. But free masks find another use for the groups that is worth about as much without grouping
  anything: the masks stitch the groups' reconstructions into one image, a per-pixel mixture of experts
  gated by the input (with ``sum_k m_k z_k`` put in every group the cost is as low as with the model's own
  masks: -1.457 on the gratings, -1.367 on our textures; with uniform masks -1.152 and -1.075). On the
  gratings that beats the true split by 0.17; on our textures and with the fully-connected engine the true
  split is better, but only by 0.03 and 0.04 (the RTagger: 0.07) -- a small reward for leaving a solution
  that training from random masks reaches first. Longer, the fully-connected Tagger from random masks
  (``--set n_steps=8000``, stopped by ``--max-minutes 65`` after 5,645 steps, its training cost flat from
  about step 4,000): cost -1.278 / -1.305 / -1.304, AMI 0.000 at every iteration -- a better mixture of
  experts, no grouping.
"""
from __future__ import annotations

import copy
import functools
import hashlib

import numpy as np
import torch

from .. import settings
from ..data.textured_mnist import SIZES, make_splits
from ..data.textures import DEFAULT_SCALE_RANGE
from ..metrics import adjusted_mutual_information
from ..models.tagger import STARTS, Tagger, check_start, corrupt_input, mixture_cost, starting_masks, tagger_loss
from ..models.video import StaticClassifier
from ..training import train

NAME = "textured_mnist"
MODELS = ("rtagger", "tagger", "convnet")
DATASETS = ("supervised", "semi_supervised")   # Table 4's two settings
DEFAULT_DATASET = "supervised"
N_CLASSES = 10
DATA_SEED = 0            # the data set (splits, textures) is the same for every training seed
TEST_SEED = 20_171_204   # the test noise and initial masks
AMI_CONVENTION = "tagger"
# our reconstruction; "book": one run 5 to 9 minutes on one thread of a 2-core CPU (measured: 0.3 to 0.45 s per
# RTagger step, 0.26 to 0.44 s per Tagger step at batch 32)
SCALES = {
    "smoke": dict(layers=[["conv", 4, 2, 3], ["conv", 8, 2, 3], ["dense", 16, 1, 3]], n_groups=3, n_iterations=2,
                  batch_size=8, labelled_per_batch=4, n_steps=3, lr=1e-3, texture_source="free"),
    "book": dict(layers=[["conv", 16, 2, 3], ["conv", 32, 2, 3], ["dense", 64, 1, 3]], n_groups=3,
                 n_iterations=3, batch_size=32, labelled_per_batch=16, n_steps=1200, lr=1e-3,
                 texture_source="free"),
    "paper": dict(layers=[["conv", 32, 1, 3], ["conv", 64, 2, 3], ["conv", 128, 2, 3], ["dense", 256, 1, 3]],
                  n_groups=3, n_iterations=3, batch_size=100, labelled_per_batch=50, n_steps=50_000, lr=1e-3,
                  texture_source="auto"),
}
# the ConvNet is ~40x faster per step than the RTagger: at book scale it gets 5x the steps (about a minute)
CONVNET_STEPS = {"smoke": 3, "book": 6000, "paper": 50_000}
NOISE_STD = 0.2
# the loop's likelihood: "gaussian" (Table 4: Gaussian noise of NOISE_STD) or, a study option, "bernoulli" (the
# images binarised at 0.5 and corrupted by bit flips of FLIP_PROB; the binary loop of Tagger's Shapes)
LIKELIHOODS = ("gaussian", "bernoulli")
FLIP_PROB = 0.2
# how the images are made (generate_textured_mnist's options, config choices)
GENERATOR_DEFAULTS = dict(thicken=1, soft_masks=False, rotate=True, texture_scale_range=list(DEFAULT_SCALE_RANGE))
# controls: fully supervised runs on other data, not part of Table 4. "gratings": Tagger's own textured MNIST
# (its released Freq20 data: pure sinusoidal gratings, digits neither thickened nor rotated, soft masks)
# "flat": our textured MNIST with each texture replaced by a constant grey level (brightness without texture)
CONTROLS = {"gratings": dict(texture_source="gratings", thicken=0, soft_masks=True, rotate=False,
                             texture_scale_range=[1.0, 1.0]),
            "flat": dict(texture_source="flat")}
ALL_DATASETS = DATASETS + tuple(CONTROLS)
HEAD_NORM = "tagger"     # heads normalised over batch and groups, as in the Tagger's released code
CLASS_WEIGHT = 1.0
EVAL_CHUNK = 200
# the paper's Table 4 (strings as printed): AMI and classification error (%) per RTagger iteration
PAPER_TABLE4 = {
    "supervised": {"rtagger": {"ami": ("0.55", "0.75", "0.80 ± 0.01"), "error": ("18.2", "8.0", "5.9 ± 0.2")},
                   "tagger": {"ami": ("0.73 ± 0.02",), "error": ("12.15 ± 0.1",)},
                   "convnet": {"ami": None, "error": ("14.3 ± 0.46",)}},
    "semi_supervised": {"rtagger": {"ami": ("0.56", "0.74", "0.80 ± 0.03"), "error": ("63.8", "28.2", "22.6 ± 6.2")},
                        "tagger": {"ami": None, "error": None},
                        "convnet": {"ami": None, "error": ("88 ± 0.30",)}},
}


def _check_dataset(dataset) -> str:
    if dataset not in ALL_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r} for experiment {NAME!r}: expected one of "
                         f"{', '.join(ALL_DATASETS)}")
    return dataset


def config(model: str, scale: str, dataset: str = DEFAULT_DATASET) -> dict:
    """Every choice of a ``textured_mnist`` run of ``model`` at ``scale`` in setting ``dataset`` (one of
    :data:`DATASETS`, or a control of :data:`CONTROLS`: the fully supervised sizes, its own data)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r} for experiment {NAME!r}: expected one of {', '.join(MODELS)}")
    scale = settings.check_scale(scale)
    dataset = _check_dataset(dataset)
    sizes = copy.deepcopy(SCALES[scale])
    if model == "convnet":
        sizes["n_steps"] = CONVNET_STEPS[scale]
    cfg = dict(model=model, scale=scale, dataset=dataset, data_seed=DATA_SEED, noise_std=NOISE_STD,
               engine={"rtagger": "rladder", "tagger": "ladder"}.get(model), cell="lstm", combinator="vanilla",
               norm="auto", head_norm=HEAD_NORM if model != "convnet" else None, class_weight=CLASS_WEIGHT,
               ami_convention=AMI_CONVENTION, train_start="random", hold_masks=False, likelihood="gaussian",
               flip_prob=FLIP_PROB,
               **copy.deepcopy(GENERATOR_DEFAULTS), **SIZES[scale][dataset if dataset in DATASETS else "supervised"],
               **sizes)
    cfg.update(copy.deepcopy(CONTROLS.get(dataset, {})))
    return cfg


def _check_config(cfg):
    if not isinstance(cfg, dict) or cfg.get("model") not in MODELS or cfg.get("dataset") not in ALL_DATASETS:
        raise ValueError("cfg must be a dict made by textured_mnist.config(model, scale, dataset)")
    if _likelihood(cfg) not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {cfg['likelihood']!r}: expected one of {LIKELIHOODS}")
    return cfg


def _likelihood(cfg) -> str:
    return cfg.get("likelihood", "gaussian")    # entries recorded before the key are Gaussian


def build(cfg: dict):
    """The untrained network of a config: a Tagger (RTagger / Tagger) or the ConvNet."""
    cfg = _check_config(cfg)
    if cfg["model"] == "convnet":
        return StaticClassifier((1, 28, 28), cfg["layers"], N_CLASSES)
    return Tagger((1, 28, 28), cfg["layers"], n_groups=cfg["n_groups"], engine=cfg["engine"], n_classes=N_CLASSES,
                  noise_std=cfg["noise_std"], cell=cfg["cell"], combinator=cfg["combinator"], norm=cfg["norm"],
                  gate_decoder_to_encoder=cfg.get("gate_decoder_to_encoder", False),
                  head_norm=cfg.get("head_norm"), zero_bias_init=cfg.get("zero_bias_init", False),
                  likelihood=_likelihood(cfg), flip_prob=cfg.get("flip_prob", FLIP_PROB))


@functools.lru_cache(maxsize=4)
def _splits(n_labelled, n_unlabelled, n_test, data_seed, texture_source, data_folder, scale_range,
            thicken, soft_masks, rotate):
    from ..data.mnist import load_mnist
    from ..data.textures import load_textures

    train_digits, test_digits = load_mnist("train"), load_mnist("test")
    textures = load_textures(None, n=20, seed=data_seed, source=texture_source)
    splits = make_splits(n_labelled, n_unlabelled, n_test, train_digits.images, train_digits.labels,
                         test_digits.images, test_digits.labels, textures, seed=data_seed,
                         scale_range=scale_range, thicken=thicken, soft_masks=soft_masks, rotate=rotate)
    return splits, textures.source


def load_data(cfg: dict) -> dict:
    """The ``{"labelled", "unlabelled", "test"}`` splits of a run (cached per process), with
    ``"texture_source"``: the bank actually used (``'free'`` or ``'brodatz'``)."""
    cfg = _check_config(cfg)
    options = {k: cfg.get(k, v) for k, v in GENERATOR_DEFAULTS.items()}   # entries older than these keys
    splits, source = _splits(cfg["n_labelled"], cfg["n_unlabelled"], cfg["n_test"], cfg["data_seed"],
                             cfg["texture_source"], str(settings.data_dir()),
                             tuple(options["texture_scale_range"]), options["thicken"], options["soft_masks"],
                             options["rotate"])
    return dict(splits, texture_source=source)


def data_fingerprint(cfg: dict) -> str:
    """A short hash of the test split a run is evaluated on (it depends on the MNIST and texture files found)."""
    test = load_data(cfg)["test"]
    return hashlib.sha256(test.images.numpy().tobytes() + test.hidden_labels.numpy().tobytes()).hexdigest()[:16]


def evaluation_requirements(cfg: dict) -> str | None:
    """Why a recorded run cannot be re-evaluated here (other data found), or None if it can."""
    recorded = cfg.get("test_data")
    if recorded is not None and data_fingerprint(cfg) != recorded:
        return (f"this {NAME} entry was evaluated on test data {recorded}, but the MNIST/texture files found here "
                f"give {data_fingerprint(cfg)}: set RLADDER_NB_DATA to the folder it was trained with")
    return None


def _check_hold_masks(cfg) -> bool:
    """The config's ``hold_masks`` (False for entries recorded before the key), checked."""
    hold = cfg.get("hold_masks", False)
    if not isinstance(hold, bool):
        raise ValueError(f"hold_masks must be true or false, got {hold!r}")
    if hold and cfg["model"] == "convnet":
        raise ValueError("hold_masks=True needs a Tagger model (it holds the masks fixed); the ConvNet has none")
    return hold


def _clean(x, cfg):
    """The clean images a run reconstructs: as generated, or binarised at 0.5 (``likelihood='bernoulli'``)."""
    return (x > 0.5).to(x.dtype) if _likelihood(cfg) == "bernoulli" else x


def _corrupt(x, cfg, generator):
    """The input a run sees: ``x`` plus Gaussian noise (``noise_std``), or with bits flipped (``flip_prob``)."""
    return corrupt_input(x, _likelihood(cfg), cfg.get("flip_prob", FLIP_PROB), cfg["noise_std"], generator)


def train_model(model: str, cfg: dict, seed: int = 0, progress=True, checkpoint_path=None,
                max_seconds: float | None = None):
    """Train one ``textured_mnist`` model; returns ``(net, TrainResult)``.

    Batches are a pure function of ``(seed, step)`` (a resumed run sees the same data); Tagger models see
    labelled and (semi-supervised) unlabelled examples, the ConvNet labelled ones only.
    """
    cfg = _check_config(cfg)
    if model != cfg["model"]:
        raise ValueError(f"model {model!r} does not match the config's {cfg['model']!r}")
    settings.seed_everything(seed)
    device = settings.get_device()
    data = load_data(cfg)
    cfg["test_data"], cfg["texture_bank"] = data_fingerprint(cfg), data["texture_source"]  # recorded
    net = build(cfg).to(device)
    lab, unl = data["labelled"], data["unlabelled"]
    n_lab = cfg["batch_size"] if model == "convnet" or len(unl) == 0 else cfg["labelled_per_batch"]
    n_unl = cfg["batch_size"] - n_lab

    train_start = cfg.get("train_start", "random")    # entries recorded before this key started at random
    check_start(train_start)
    if model == "convnet" and train_start != "random":
        raise ValueError(f"train_start={train_start!r} needs a Tagger model (it sets the starting masks); "
                         "the ConvNet has none")
    hold_masks = _check_hold_masks(cfg)

    def take(split, n, step, stream):
        per_epoch = max(1, len(split) // n)
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng([seed, stream, epoch]).permutation(len(split))
        index = torch.as_tensor(np.resize(order[k * n:], n))
        return _clean(split.images[index], cfg), split.labels[index], split.masks[index]

    def make_batch(step):
        x, y, masks = take(lab, n_lab, step, 0)
        if n_unl:
            xu, yu, mu = take(unl, n_unl, step, 1)
            x, y, masks = torch.cat([x, xu]), torch.cat([y, yu]), torch.cat([masks, mu])
        g = torch.Generator().manual_seed(int(np.random.default_rng([seed, step, 2]).integers(2**62)))
        init = starting_masks(train_start, masks, cfg["n_groups"]) if model != "convnet" else None
        return (x.to(device), _corrupt(x, cfg, g).to(device), y.to(device), g,
                None if init is None else init.to(device))

    def loss_fn(net, batch):
        x, x_noisy, y, g, init = batch
        if model == "convnet":
            logits = net(x_noisy)["logits"]
            ce = torch.nn.functional.cross_entropy(logits, y)
            return ce, {"class_ce": float(ce.detach())}
        out = net(x_noisy, cfg["n_iterations"], generator=g, initial_masks=init, hold_masks=hold_masks)
        return tagger_loss(out, x, y, cfg["class_weight"])

    result = train(net, make_batch, loss_fn, cfg["n_steps"], lr=cfg["lr"], checkpoint_path=checkpoint_path,
                   progress=progress, max_seconds=max_seconds, description=f"{NAME}/{cfg['dataset']}/{model}")
    return net, result


@torch.no_grad()
def predict(net, cfg: dict, n: int | None = None, seed: int = TEST_SEED, split: str = "test",
            start: str = "random") -> dict:
    """The network's outputs on the first ``n`` examples of a split (numpy), for metrics and figures.

    Returns ``images`` (n, 1, H, W), ``noisy`` (n, 1, H, W), ``true_masks`` (n, 2, H, W), ``labels`` (n,)
    and, for Tagger models, ``z`` (n, I, K, 1, H, W), ``masks`` (n, I, K, H, W), ``class_probs``
    (n, I, 10); for the ConvNet ``class_probs`` (n, 1, 10). Noise and initial masks are seeded by ``seed``.
    ``start`` (Tagger models): the starting masks, random as in training or, as a diagnostic, the true
    segmentation (``'ground_truth'``) or everything in one group (``'one_group'``); see
    :func:`~rladder_nb.models.tagger.starting_masks`.
    Introduced in *Perceptual grouping with Tagger and RTagger*.
    """
    cfg = _check_config(cfg)
    data = load_data(cfg)[split]
    if start != "random" and cfg["model"] == "convnet":
        raise ValueError(f"start={start!r} needs a Tagger model (it sets the starting masks); the ConvNet has none")
    check_start(start)
    hold_masks = _check_hold_masks(cfg)
    n = len(data) if n is None else n
    if not isinstance(n, int) or not 1 <= n <= len(data):
        raise ValueError(f"n must be an integer in 1..{len(data)}, got {n!r}")
    device = next(net.parameters()).device
    net.eval()
    g = torch.Generator().manual_seed(int(seed))
    x = _clean(data.images[:n], cfg)
    noisy = _corrupt(x, cfg, g)
    keys = ("z", "masks", "class_probs")
    outs = {k: [] for k in keys}
    for begin in range(0, n, EVAL_CHUNK):
        chunk = noisy[begin:begin + EVAL_CHUNK].to(device)
        if cfg["model"] == "convnet":
            outs["class_probs"].append(net(chunk)["logits"].softmax(-1)[:, None].cpu())
        else:
            init = starting_masks(start, data.masks[begin:min(n, begin + EVAL_CHUNK)], cfg["n_groups"])
            out = net(chunk, cfg["n_iterations"], generator=g,
                      initial_masks=None if init is None else init.to(device), hold_masks=hold_masks)
            for k in keys:
                outs[k].append(out[k].cpu())
    result = {"images": x.numpy(), "noisy": noisy.numpy(), "true_masks": data.masks[:n].numpy(),
              "labels": data.hidden_labels[:n].numpy()}
    result.update({k: torch.cat(v).numpy() for k, v in outs.items() if v})
    return result


def evaluate(model_name: str, net, cfg: dict, seed: int = 0) -> dict:
    """Per-iteration ``ami`` and ``classification_error`` (%) on the test split (see the module docstring).

    Deterministic: the test split, its noise and the initial masks are fixed (``seed`` is unused).
    """
    cfg = _check_config(cfg)
    problem = evaluation_requirements(cfg)
    if problem:
        raise ValueError(problem)
    out = predict(net, cfg)
    errors = (out["class_probs"].argmax(-1) != out["labels"][:, None]).mean(axis=0) * 100   # (I,)
    metrics = {"classification_error": [round(float(e), 4) for e in errors]}
    if "masks" in out:
        metrics["ami"] = [round(adjusted_mutual_information(out["true_masks"], out["masks"][:, i],
                                                             convention=AMI_CONVENTION), 6)
                          for i in range(out["masks"].shape[1])]
    metrics.update(ami_convention=AMI_CONVENTION, n_test=int(len(out["labels"])))
    return metrics


def start_study(net, cfg: dict, n: int | None = None) -> dict:
    """Would the model keep a correct split if handed one? Its outputs from each start of
    :data:`~rladder_nb.models.tagger.STARTS` (random as in training, the true segmentation, everything in
    one group) on the first ``n`` test images, same noise.

    Returns ``{start: {"cost": [...], "ami": [...], "classification_error": [...]}}``, one value per
    iteration: the Tagger cost against the clean image (mean over images), the AMI (Tagger convention) and
    the error (%). A diagnostic of a trained model, not a zoo metric. Introduced in *Perceptual grouping
    with Tagger and RTagger*.
    """
    cfg = _check_config(cfg)
    if cfg["model"] == "convnet":
        raise ValueError("start_study needs a Tagger model (rtagger or tagger); the ConvNet has no masks")
    result = {}
    for start in STARTS:
        out = predict(net, cfg, n=n, start=start)
        cost = mixture_cost(net.likelihood, torch.as_tensor(out["images"]), torch.as_tensor(out["z"]),
                            torch.as_tensor(out["masks"]), net.v.detach().cpu()).mean(0)
        errors = (out["class_probs"].argmax(-1) != out["labels"][:, None]).mean(axis=0) * 100
        result[start] = {
            "cost": [round(float(c), 4) for c in cost],
            "ami": [round(adjusted_mutual_information(out["true_masks"], out["masks"][:, i], convention=AMI_CONVENTION), 4)
                    for i in range(out["masks"].shape[1])],
            "classification_error": [round(float(e), 2) for e in errors]}
    return result


# --------------------------------------------------------------------------------------------------
# the paper's Table 4 and ours (python -m rladder_nb reproduce textured_mnist)
# --------------------------------------------------------------------------------------------------

NOT_IN_PAPER = {("semi_supervised", "tagger")}  # reproduce shows these only where recorded (or at smoke scale)


def _fmt_list(values, digits):
    return " / ".join(f"{v:.{digits}f}" for v in values)


def table4_markdown(results: dict, scale: str) -> str:
    """Table 4 as Markdown: the paper's numbers beside ours.

    ``results`` maps ``(dataset, model)`` to metrics (:func:`evaluate`'s dict) or None (not run).
    Introduced in *Perceptual grouping with Tagger and RTagger*.
    """
    rows = ["| setting | model | AMI (paper) | AMI (ours) | error % (paper) | error % (ours) |",
            "|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for model in MODELS:
            paper, ours = PAPER_TABLE4[dataset][model], results.get((dataset, model))
            ami = " / ".join(paper["ami"]) if paper["ami"] else "–"
            err = " / ".join(paper["error"]) if paper["error"] else "–"
            our_ami = _fmt_list(ours["ami"], 3) if ours and "ami" in ours else "–"
            our_err = _fmt_list(ours["classification_error"], 1) if ours else "not run"
            rows.append(f"| {dataset} | {model} | {ami} | {our_ami} | {err} | {our_err} |")
    rows.append(f"\nOurs: {scale} scale, free textures unless the config says otherwise; values per iteration "
                f"(iterations 1 / 2 / 3), AMI in the Tagger convention.")
    return "\n".join(rows)


def reproduce_table(scale: str, seeds=(0,), progress: bool = True) -> str:
    """Table 4 at ``scale`` (both settings, every model; zoo entries where recorded, else trained now).

    Used by ``python -m rladder_nb reproduce textured_mnist``; with several seeds, each seed's table.
    """
    from .. import zoo

    tables = []
    for seed in seeds:
        results = {}
        for dataset in DATASETS:
            for model in MODELS:
                name = zoo.entry_name(NAME, model, scale, seed, dataset)
                if (dataset, model) in NOT_IN_PAPER and scale != "smoke" and name not in zoo.load_manifest():
                    continue  # the paper could not train it; train it yourself with `python -m rladder_nb train`
                _, entry = zoo.load_or_train(NAME, model, scale, seed, dataset, progress=progress)
                results[(dataset, model)] = entry["metrics"]
        tables.append(f"seed {seed}:\n" + table4_markdown(results, scale))
    return "\n\n".join(tables)
