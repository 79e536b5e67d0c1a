"""Training loops of the OOD detectors (thesis §4.1.2 "Joint training", §4.2.2 "Network training").

* :func:`train_autoencoder` — stage 1 of TEND and the AE baseline: MSE
  reconstruction of in-distribution (ID) images (eq. 4.1).
* :func:`train_tend` — stage 2: the encoder copied from the autoencoder and
  frozen (in eval mode, so its batch-norm statistics stay fixed); the head is
  trained with BCE (ID = 0, distorted = 1; eq. 4.2) on ID images and fake OOD
  made by :func:`medlim.curation.ood.distortions.distort` (a fresh distortion
  per image and epoch). After the warm-up epochs the centre O is the mean ID
  embedding, components with ``|O_i| < 0.1`` pushed to ±0.1 (DeepSVDD), and the
  margin loss ``g_in + g_out`` (eqs. 4.3–4.4) is added.
* :func:`train_cvad` — the cascade VAE (eq. 4.7: MSE + KL for each VAE, summed
  over pixels and latents, α1 = α2 = 1), then, non-adversarially, the
  discriminator on real ID images (0) vs reconstructions and reconstructions
  from perturbed latents (1).

Every loop is deterministic for a seed on the CPU (``threads`` torch threads,
``torch.manual_seed`` plus separate seeded generators for the batch order and
the distortions, no nondeterministic kernels on the CPU), so a shipped file is
reproduced bit for bit by its recorded command; progress goes through an
optional ``log(line)`` callback. Each loop keeps its state in a small trainer
(:class:`AutoencoderTrainer`, :class:`TendTrainer`, :class:`CvadTrainer`) that
trains one epoch per call, so the training harness (:func:`medlim.core.training.fit`)
can validate between epochs and stop at an epoch boundary; a full run calls it
``epochs`` times, exactly as before.

Margin learner (eqs. 4.3–4.4): ``d = ‖c − O‖²`` is summed over the K embedding
components (as in DeepSVDD; the thesis's ``1/K Σ`` is read
as a mean over the samples), and ``g_in``/``g_out`` are means over the batch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medlim.curation.ood.distortions import EXTRA_DISTORTIONS, TRAIN_DISTORTIONS, distort
from medlim.curation.ood.nets import ConvAutoencoder, CvadNet, TendNet
from medlim.errors import ParameterError

__all__ = ["OodTrainingConfig", "MARGINS", "AutoencoderTrainer", "TendTrainer", "CvadTrainer", "trainer_parts",
           "trainer_apply", "AUTOENCODER_PARTS", "TEND_PARTS", "CVAD_GENERATOR_PARTS", "CVAD_DISCRIMINATOR_PARTS",
           "train_autoencoder", "train_tend", "train_cvad"]

#: The thesis's margin choices R for TEND.
MARGINS: tuple[float, ...] = (150.0, 250.0, 500.0)
Log = Callable[[str], None]


@dataclass(frozen=True)
class OodTrainingConfig:
    """Hyper-parameters of the OOD detectors.

    The defaults are the settings MedShift (:mod:`medlim.curation.shift`) builds
    on; the shipped detectors change some of them on the command line (each
    manifest entry records its command and full settings under
    ``params.training``): TEND ``--margin 500 --epochs 150 --warmup-epochs 10
    --batch-size 16 --train-encoder`` with the three extra distortions, CVAD ``--epochs 150
    --recon-weight 300`` — chosen on validation phantoms (seed 7000), never on
    the held-out seed.

    Attributes:
        input_size: square model input side (shipped 64; thesis 256).
        width: base channel count ``w`` (thesis 16; shipped 8 to keep files < 5 MB).
        embedding: TEND embedding size K (thesis 512).
        latent: CVAD main latent size K (thesis 512; shipped 256, branch 4K = 1024).
        ae_epochs, tend_epochs, warmup_epochs: TEND stages (thesis 50–150; warm-up 10).
        margin: TEND margin R, one of :data:`MARGINS`.
        weight: TEND score weight λ (thesis 0.5).
        cvad_epochs, disc_epochs: CVAD generator and discriminator epochs.
        distortions: names of the TEND fake-OOD distortions (default the
            thesis's six; see :mod:`medlim.curation.ood.distortions`).
        latent_noise: std of the latent perturbation for the discriminator's fakes.
        recon_weight: weight of the summed squared error in each VAE loss,
            ``1/(2σ²)`` for a Gaussian likelihood of variance σ² (1 = σ² of 0.5;
            larger = sharper, more class-specific reconstructions).
        train_encoder: TEND stage 2 also trains the encoder copied from the
            autoencoder (the authors' code) instead of freezing it (the thesis,
            §4.1.2: "the AutoEncoder model is fully frozen"; the default).
        batch_size, lr: Adam settings (thesis lr 1e-3).
        seed: torch and numpy seed.
        threads: torch CPU threads.
    """

    input_size: int = 64
    width: int = 8
    embedding: int = 512
    latent: int = 256
    ae_epochs: int = 30
    tend_epochs: int = 30
    warmup_epochs: int = 5
    margin: float = 150.0
    weight: float = 0.5
    distortions: tuple[str, ...] = tuple(TRAIN_DISTORTIONS)
    cvad_epochs: int = 40
    disc_epochs: int = 12
    latent_noise: float = 1.0
    recon_weight: float = 1.0
    train_encoder: bool = False
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if float(self.margin) not in MARGINS:
            raise ParameterError(f"`margin` must be one of {MARGINS}, {self.margin!r} is given.")
        if not 0.0 <= self.weight <= 1.0:
            raise ParameterError(f"`weight` (λ) must be in [0, 1], {self.weight!r} is given.")
        for name in ("ae_epochs", "tend_epochs", "cvad_epochs", "disc_epochs", "batch_size", "threads", "input_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")
        known = {**TRAIN_DISTORTIONS, **EXTRA_DISTORTIONS}
        if not self.distortions or any(name not in known for name in self.distortions):
            raise ParameterError(f"`distortions` must name some of {', '.join(known)}; {self.distortions!r} is given.")
        object.__setattr__(self, "distortions", tuple(self.distortions))
        if not self.recon_weight > 0:
            raise ParameterError(f"`recon_weight` must be positive, {self.recon_weight!r} is given.")
        if not 0 <= self.warmup_epochs < self.tend_epochs:
            raise ParameterError(f"`warmup_epochs` must be in [0, tend_epochs), {self.warmup_epochs!r} is given.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _setup(config: OodTrainingConfig, images: np.ndarray) -> torch.Tensor:
    if images.ndim != 3 or images.shape[1:] != (config.input_size, config.input_size) or len(images) < 2:
        raise ParameterError(
            f"training images must be [N ≥ 2, {config.input_size}, {config.input_size}]; shape {images.shape} is given.")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    # drop a last batch of one (batch norm needs two samples)
    return [b for b in order.split(batch_size) if len(b) > 1]


def trainer_parts(trainer: Any, *names: str) -> Callable[[], dict[str, Any]]:
    """The trainer's attributes ``names`` (model, optimisers, random streams, counters) for a job's checkpoint."""
    return lambda: {name: getattr(trainer, name) for name in names}


def trainer_apply(trainer: Any) -> Callable[[Mapping[str, Any]], None]:
    """Sets the plain values a checkpoint kept (counters, flags) back on the trainer."""

    def apply(values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            setattr(trainer, name, value)

    return apply


def _run(train_epoch: Callable[[], str], epochs: int, log: Log | None, *, stage: str,
         key: Sequence[Any] | None, trainer: Any, parts: tuple[str, ...]) -> None:
    """``epochs`` epochs; inside a job and with a ``key`` (what identifies the run), saved after every
    epoch and resumed after the last saved one (:func:`medlim.core.training.run_epochs`)."""
    from medlim.core.training import run_epochs
    from medlim.core.training_resume import fit_resume

    resume = None if key is None else fit_resume(stage, (*key, trainer.config.to_dict()),
                                                 trainer_parts(trainer, *parts), apply=trainer_apply(trainer))
    run_epochs(lambda _epoch: train_epoch(), epochs=epochs, label=stage, progress=log, resume=resume)


#: What a job's checkpoint keeps of each trainer's stage (the model, optimisers, random streams, counters).
AUTOENCODER_PARTS = ("model", "optimiser", "generator", "done")
TEND_PARTS = ("model", "optimiser", "generator", "rng", "done", "have_centre")
CVAD_GENERATOR_PARTS = ("model", "optimiser", "order", "generator_done")
CVAD_DISCRIMINATOR_PARTS = ("model", "optimiser", "disc_optimiser", "order", "generator_done", "discriminator_done")


class AutoencoderTrainer:
    """Stage 1 state (model, optimiser, seeded batch order), trained one epoch per call.

    Args:
        images: ID training images ``np.ndarray[N, s, s]`` float32 in [0, 1], ``s = config.input_size``.
        config: hyper-parameters (``ae_epochs`` is the epoch count of a full run).
    """

    def __init__(self, images: np.ndarray, config: OodTrainingConfig) -> None:
        self.config = config
        self.data = _setup(config, images)
        self.model = ConvAutoencoder(channels=1, width=config.width, input_size=config.input_size)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epochs = config.ae_epochs
        self.done = 0

    def train_epoch(self) -> str:
        """One pass over the images (MSE, eq. 4.1); returns a progress line."""
        model, data, config = self.model, self.data, self.config
        model.train()
        total = 0.0
        for index in _batches(len(data), config.batch_size, self.generator):
            batch = data[index]
            loss = nn.functional.mse_loss(model(batch), batch)
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            total += float(loss.detach()) * len(index)
        self.done += 1
        return f"autoencoder epoch {self.done}/{self.epochs}: mse {total / len(data):.5f}"


def train_autoencoder(images: np.ndarray, config: OodTrainingConfig, *, log: Log | None = None,
                      key: Sequence[Any] | None = None) -> ConvAutoencoder:
    """Stage 1: the convolutional autoencoder on ID images.

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1], ``s = config.input_size``.
        config: hyper-parameters.
        log: progress callback.
        key: what identifies the run (inside a job: saved per epoch and resumed).

    Returns:
        The trained :class:`ConvAutoencoder` in eval mode.
    """
    trainer = AutoencoderTrainer(images, config)
    _run(trainer.train_epoch, trainer.epochs, log, stage="ae", key=key, trainer=trainer,
         parts=AUTOENCODER_PARTS)
    return trainer.model.eval()


def _distorted(images: np.ndarray, rng: np.random.Generator, kinds: tuple[str, ...]) -> torch.Tensor:
    fakes = np.stack([distort(image, rng, kinds=kinds) for image in images])
    return torch.from_numpy(np.clip(fakes, 0.0, 1.0).astype(np.float32)).unsqueeze(1)


def _centre(model: TendNet, data: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        embeddings = torch.cat([model.embedding(data[i : i + batch_size]) for i in range(0, len(data), batch_size)])
    centre = embeddings.mean(dim=0)
    small = centre.abs() < 0.1
    # DeepSVDD: a centre component near zero lets the network collapse onto it
    centre[small] = torch.where(centre[small] < 0, -0.1, 0.1)
    return centre


class TendTrainer:
    """TEND stage-2 state, trained one epoch per call (see :func:`train_tend`).

    Args:
        images: ID training images ``np.ndarray[N, s, s]`` float32 in [0, 1].
        autoencoder: the stage-1 model (its encoder is copied; frozen unless ``config.train_encoder``).
        config: hyper-parameters (``tend_epochs`` is the epoch count of a full run).
    """

    def __init__(self, images: np.ndarray, autoencoder: ConvAutoencoder, config: OodTrainingConfig) -> None:
        self.config, self.images = config, images
        self.data = _setup(config, images)
        model = TendNet(channels=1, width=config.width, input_size=config.input_size, embedding=config.embedding)
        model.encoder.load_state_dict(copy.deepcopy(autoencoder.encoder.state_dict()))
        if not config.train_encoder:
            for parameter in model.encoder.parameters():
                parameter.requires_grad_(False)
        self.model = model
        self.optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.rng = np.random.default_rng(config.seed + 2)
        self.epochs = config.tend_epochs
        self.done = 0
        self.have_centre = config.warmup_epochs == 0
        if self.have_centre:
            model.centre.copy_(_centre(model, self.data, config.batch_size))

    def train_epoch(self) -> str:
        """One epoch: BCE on ID vs fresh fake OOD, plus the margin loss after the warm-up; a progress line."""
        model, data, config = self.model, self.data, self.config
        epoch, margin = self.done, float(config.margin)
        if not self.have_centre and epoch == config.warmup_epochs:
            model.centre.copy_(_centre(model, data, config.batch_size))
            self.have_centre = True
        model.train()
        if not config.train_encoder:
            model.encoder.eval()  # frozen: keep the stage-1 batch-norm statistics
        fakes = _distorted(self.images, self.rng, config.distortions)
        sums = {"bce": 0.0, "g_in": 0.0, "g_out": 0.0}
        for index in _batches(len(data), config.batch_size, self.generator):
            batch = torch.cat([data[index], fakes[index]])
            target = torch.cat([torch.zeros(len(index)), torch.ones(len(index))])
            p, c = model(batch)
            if not bool(torch.isfinite(p).all()):
                raise ParameterError(
                    f"TEND training diverged in epoch {epoch + 1} (non-finite probabilities) with margin {margin:g}, "
                    f"lr {config.lr:g}, distortions {','.join(config.distortions)}; change these settings.")
            loss = nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), target)
            sums["bce"] += float(loss.detach()) * len(index)
            if self.have_centre:
                d = model.distance(c)
                g_in = d[: len(index)].mean()
                g_out = torch.clamp(margin - d[len(index) :], min=0.0).mean()
                loss = loss + g_in + g_out
                sums["g_in"] += float(g_in.detach()) * len(index)
                sums["g_out"] += float(g_out.detach()) * len(index)
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
        self.done += 1
        return f"tend epoch {self.done}/{self.epochs}: " + ", ".join(f"{k} {v / len(data):.4f}" for k, v in sums.items())


def train_tend(
    images: np.ndarray,
    autoencoder: ConvAutoencoder,
    config: OodTrainingConfig,
    *,
    log: Log | None = None,
    key: Sequence[Any] | None = None,
) -> TendNet:
    """Stage 2 of TEND: frozen encoder (unless ``config.train_encoder``), classifier head and margin learner.

    Args:
        images: ID training images ``np.ndarray[N, s, s]`` float32 in [0, 1].
        autoencoder: the stage-1 model (its encoder is copied and frozen).
        config: hyper-parameters (``margin`` = R, ``warmup_epochs``).
        log: progress callback.
        key: what identifies the run (inside a job: saved per epoch and resumed).

    Returns:
        The trained :class:`TendNet` in eval mode, with its centre O set.
    """
    trainer = TendTrainer(images, autoencoder, config)
    _run(trainer.train_epoch, trainer.epochs, log, stage="tend", key=key, trainer=trainer, parts=TEND_PARTS)
    return trainer.model.eval()


def _vae_loss(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
              recon_weight: float) -> torch.Tensor:
    # eq. 4.5 with a Gaussian likelihood: −log p(x|z) = Σ (x − x′)² / (2σ²) + const
    n = target.shape[0]
    mse = ((recon - target) ** 2).sum() / n
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
    return recon_weight * mse + kl


class CvadTrainer:
    """CVAD state: the cascade VAE's epochs, then the discriminator's (see :func:`train_cvad`).

    Both stages draw their batch order from one seeded generator, so a full run
    is :attr:`generator_epochs` calls of :meth:`generator_epoch` then
    :attr:`discriminator_epochs` calls of :meth:`discriminator_epoch`.

    Args:
        images: ID training images ``np.ndarray[N, s, s]`` float32 in [0, 1].
        config: hyper-parameters (``cvad_epochs``, ``disc_epochs``, ``latent_noise``, ``recon_weight``).
    """

    def __init__(self, images: np.ndarray, config: OodTrainingConfig) -> None:
        self.config = config
        self.data = _setup(config, images)
        self.model = CvadNet(channels=1, width=config.width, input_size=config.input_size, latent=config.latent)
        self.optimiser = torch.optim.Adam(self.model.generator.parameters(), lr=config.lr)
        self.disc_optimiser: torch.optim.Optimizer | None = None
        self.order = torch.Generator().manual_seed(config.seed + 3)
        self.generator_epochs, self.discriminator_epochs = config.cvad_epochs, config.disc_epochs
        self.generator_done = self.discriminator_done = 0

    def generator_epoch(self) -> str:
        """One epoch of the cascade VAE (eq. 4.7); returns a progress line."""
        generator_net, data, config = self.model.generator, self.data, self.config
        generator_net.train()
        total = 0.0
        for index in _batches(len(data), config.batch_size, self.order):
            batch = data[index]
            out = generator_net(batch)
            weight = config.recon_weight
            loss = (_vae_loss(out.main, batch, out.mu1, out.logvar1, recon_weight=weight)
                    + _vae_loss(out.branch, batch, out.mu2, out.logvar2, recon_weight=weight))
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            total += float(loss.detach()) * len(index)
        self.generator_done += 1
        return f"cvad generator epoch {self.generator_done}/{self.generator_epochs}: loss {total / len(data):.3f}"

    def ensure_discriminator_optimiser(self) -> torch.optim.Optimizer:
        """The discriminator's optimiser, made before its first epoch (so a checkpoint can hold it)."""
        if self.disc_optimiser is None:
            self.disc_optimiser = torch.optim.Adam(self.model.discriminator.parameters(), lr=self.config.lr)
        return self.disc_optimiser

    def discriminator_epoch(self) -> str:
        """One epoch of the discriminator: real ID (0) vs reconstructions and perturbed ones (1)."""
        generator_net, discriminator = self.model.generator, self.model.discriminator
        data, config = self.data, self.config
        generator_net.eval()
        self.ensure_discriminator_optimiser()
        discriminator.train()
        total = 0.0
        for index in _batches(len(data), config.batch_size, self.order):
            real = data[index]
            with torch.no_grad():
                recon = generator_net(real, sample=False).image
                perturbed = generator_net(real, sample=False, latent_noise=config.latent_noise).image
            batch = torch.cat([real, recon, perturbed])
            target = torch.cat([torch.zeros(len(index)), torch.ones(2 * len(index))])
            # real images weigh as much as both kinds of fakes together
            weight = torch.cat([torch.full((len(index),), 1.0), torch.full((2 * len(index),), 0.5)])
            loss = nn.functional.binary_cross_entropy(discriminator(batch).clamp(1e-6, 1 - 1e-6), target, weight=weight)
            self.disc_optimiser.zero_grad()
            loss.backward()
            self.disc_optimiser.step()
            total += float(loss.detach()) * len(index)
        self.discriminator_done += 1
        return (f"cvad discriminator epoch {self.discriminator_done}/{self.discriminator_epochs}: "
                f"bce {total / len(data):.4f}")


def train_cvad(images: np.ndarray, config: OodTrainingConfig, *, log: Log | None = None,
               key: Sequence[Any] | None = None) -> CvadNet:
    """CVAD: the cascade VAE, then the discriminator (two stages, not adversarial).

    Args:
        images: ID training images ``np.ndarray[N, s, s]`` float32 in [0, 1].
        config: hyper-parameters (``cvad_epochs``, ``disc_epochs``, ``latent_noise``).
        log: progress callback.
        key: what identifies the run (inside a job: each stage saved per epoch and resumed).

    Returns:
        The trained :class:`CvadNet` in eval mode.
    """
    trainer = CvadTrainer(images, config)
    _run(trainer.generator_epoch, trainer.generator_epochs, log, stage="cvad-generator", key=key, trainer=trainer,
         parts=CVAD_GENERATOR_PARTS)
    trainer.ensure_discriminator_optimiser()
    _run(trainer.discriminator_epoch, trainer.discriminator_epochs, log, stage="cvad-discriminator", key=key,
         trainer=trainer, parts=CVAD_DISCRIMINATOR_PARTS)
    return trainer.model.eval()
