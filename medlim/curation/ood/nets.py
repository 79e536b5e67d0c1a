"""Networks of the OOD detectors: the autoencoder, TEND and CVAD (thesis §4.1–4.2).

Only architecture lives here; training is in :mod:`medlim.curation.ood.train`
and scoring in :mod:`medlim.curation.ood.scoring`.

* :class:`ConvAutoencoder` — thesis Table 4.1 encoder/decoder: five
  Conv(k4, s2, p1) layers ``c → w → 2w → 4w → 8w → 16w`` and the mirrored
  transposed convolutions, each followed by batch norm and ReLU (the last
  decoder layer ends in a sigmoid instead, so outputs are images in [0, 1]).
  ``w = 16`` in the thesis.
* :class:`TendNet` — the autoencoder's encoder (frozen in stage 2 by default), then the classifier head:
  Conv(16w → 32w, k4, s2, p1) + BN + ReLU → flatten → FC(→ K) = embedding c →
  ReLU → FC(K → 1) → sigmoid. Table 4.1's FC(2048, 512) belongs to a 128×128
  input; the first FC's input size here follows the input size
  (``32w · (s/64)²``). The centre O of the margin learner is a buffer.
* :class:`CvadNet` — the cascade VAE generator (main VAE E11/E12/D11/D12 and a
  branch VAE whose encoder E2 is one Conv(k4, s2, p1) on the concatenation of
  E11 and mid-decoder features, latent 4K) plus the discriminator (five convs +
  FC → sigmoid = P(fake)). All convs use BN + LeakyReLU(0.2) (thesis §4.2.2).
  Interpretation (the thesis text is ambiguous about where D11 ends): D11 is the
  part of the decoder that returns to E11's resolution (two transposed convs),
  so the two feature maps can be concatenated; D12 is the rest. The branch
  decoder D2 is one transposed conv back to that resolution followed by a copy
  of D12's layer structure (its own weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medlim.errors import ParameterError

__all__ = [
    "ConvAutoencoder",
    "TendNet",
    "CvadGenerator",
    "CvadDiscriminator",
    "CvadNet",
    "CvadOutput",
    "build_ood_autoencoder",
    "build_tend",
    "build_cvad",
]


def _check_geometry(input_size: int, channels: int, width: int, *, levels: int) -> None:
    step = 2 ** levels
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size % step or input_size < step:
        raise ParameterError(f"`input_size` must be a positive multiple of {2 ** levels}, {input_size!r} is given.")
    if not isinstance(channels, int) or channels < 1:
        raise ParameterError(f"`channels` must be a positive integer, {channels!r} is given.")
    if not isinstance(width, int) or width < 1:
        raise ParameterError(f"`width` must be a positive integer, {width!r} is given.")


def _down(c_in: int, c_out: int, *, leaky: bool = False) -> nn.Sequential:
    act: nn.Module = nn.LeakyReLU(0.2, inplace=True) if leaky else nn.ReLU(inplace=True)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), act)


def _up(c_in: int, c_out: int, *, leaky: bool = False) -> nn.Sequential:
    act: nn.Module = nn.LeakyReLU(0.2, inplace=True) if leaky else nn.ReLU(inplace=True)
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), act)


class ConvAutoencoder(nn.Module):
    """Thesis Table 4.1 autoencoder (stage 1 of TEND and the AE baseline).

    Args:
        channels: image channels (1 for radiographs).
        width: base channel count ``w`` (thesis 16).
        input_size: square input side, a multiple of 32.

    Shapes: ``x`` ``Tensor[N, channels, s, s]`` in [0, 1] → reconstruction of the same shape.
    """

    def __init__(self, *, channels: int = 1, width: int = 16, input_size: int = 64) -> None:
        super().__init__()
        _check_geometry(input_size, channels, width, levels=5)
        widths = [width * 2 ** k for k in range(5)]
        self.encoder = nn.Sequential(*[_down(c_in, c_out) for c_in, c_out in zip([channels, *widths[:-1]], widths)])
        ups = [_up(widths[k], widths[k - 1]) for k in range(4, 0, -1)]
        self.decoder = nn.Sequential(*ups, nn.ConvTranspose2d(widths[0], channels, 4, 2, 1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``e``: ``Tensor[N, 16w, s/32, s/32]``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class TendNet(nn.Module):
    """TEND: encoder (from the stage-1 autoencoder) + classifier head + centre.

    Args:
        channels, width, input_size: as :class:`ConvAutoencoder`; input_size a multiple of 64.
        embedding: size K of the compressed embedding ``c`` (thesis 512).

    ``forward(x) -> (p, c)``: ``p`` ``Tensor[N]`` in [0, 1] (probability of being
    transformed/OOD), ``c`` ``Tensor[N, K]``. :meth:`distance` gives
    ``d = ‖c − O‖²`` with the stored centre ``O`` (buffer ``centre``, ``Tensor[K]``).
    """

    def __init__(self, *, channels: int = 1, width: int = 16, input_size: int = 64, embedding: int = 512) -> None:
        super().__init__()
        _check_geometry(input_size, channels, width, levels=6)
        widths = [width * 2 ** k for k in range(5)]
        self.encoder = nn.Sequential(*[_down(c_in, c_out) for c_in, c_out in zip([channels, *widths[:-1]], widths)])
        side = input_size // 64
        self.head_conv = _down(widths[-1], 2 * widths[-1])
        self.embed = nn.Linear(2 * widths[-1] * side * side, embedding)
        self.classify = nn.Linear(embedding, 1)
        self.register_buffer("centre", torch.zeros(embedding))

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding ``c``: ``Tensor[N, K]``."""
        features = self.head_conv(self.encoder(x))
        return self.embed(torch.flatten(features, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.embedding(x)
        p = torch.sigmoid(self.classify(torch.relu(c))).squeeze(1)
        return p, c

    def distance(self, c: torch.Tensor) -> torch.Tensor:
        """``d = ‖c − O‖²`` per row: ``Tensor[N]``."""
        return ((c - self.centre) ** 2).sum(dim=1)


@dataclass(frozen=True)
class CvadOutput:
    """What the cascade VAE returns for a batch.

    Attributes:
        image: combined reconstruction ``Tensor[N, C, s, s]`` in [0, 1].
        main, branch: per-VAE reconstructions in [0, 1].
        mu1, logvar1: main latent parameters ``Tensor[N, K]``.
        mu2, logvar2: branch latent parameters ``Tensor[N, 4K/(s/16)², s/16, s/16]`` (4K values).
    """

    image: torch.Tensor
    main: torch.Tensor
    branch: torch.Tensor
    mu1: torch.Tensor
    logvar1: torch.Tensor
    mu2: torch.Tensor
    logvar2: torch.Tensor


class CvadGenerator(nn.Module):
    """The cascade VAE (pchVAE) generator of CVAD.

    Args:
        channels, width, input_size: as :class:`ConvAutoencoder` (input_size a multiple of 32).
        latent: K, the main latent size (thesis 512); the branch latent has 4K values.
    """

    def __init__(self, *, channels: int = 1, width: int = 16, input_size: int = 64, latent: int = 512) -> None:
        super().__init__()
        _check_geometry(input_size, channels, width, levels=5)
        w = [width * 2 ** k for k in range(5)]
        self.deep_side = input_size // 32
        branch_side = input_size // 16
        if (4 * latent) % (branch_side * branch_side):
            raise ParameterError(
                f"4·latent = {4 * latent} must be divisible by (input_size/16)² = {branch_side ** 2}.")
        self.branch_channels = 4 * latent // (branch_side * branch_side)
        self.e11 = nn.Sequential(_down(channels, w[0], leaky=True), _down(w[0], w[1], leaky=True),
                                 _down(w[1], w[2], leaky=True))
        self.e12 = nn.Sequential(_down(w[2], w[3], leaky=True), _down(w[3], w[4], leaky=True))
        flat = w[4] * self.deep_side * self.deep_side
        self.mu1 = nn.Linear(flat, latent)
        self.logvar1 = nn.Linear(flat, latent)
        self.from_latent = nn.Linear(latent, flat)
        self.d11 = nn.Sequential(_up(w[4], w[3], leaky=True), _up(w[3], w[2], leaky=True))
        self.d12 = nn.Sequential(_up(w[2], w[1], leaky=True), _up(w[1], w[0], leaky=True),
                                 nn.ConvTranspose2d(w[0], channels, 4, 2, 1))
        # E2: one Conv(k4, s2, p1) giving mean and log-variance channels (thesis, not the authors' Linear).
        self.e2 = nn.Conv2d(2 * w[2], 2 * self.branch_channels, 4, 2, 1)
        self.d2 = nn.Sequential(_up(self.branch_channels, w[2], leaky=True), _up(w[2], w[1], leaky=True),
                                _up(w[1], w[0], leaky=True), nn.ConvTranspose2d(w[0], channels, 4, 2, 1))
        self._width4 = w[4]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(E11 features, mu1, logvar1)``."""
        low = self.e11(x)
        deep = torch.flatten(self.e12(low), 1)
        return low, self.mu1(deep), self.logvar1(deep)

    def decode_main(self, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D11 features, main logits)``."""
        deep = self.from_latent(z1).view(-1, self._width4, self.deep_side, self.deep_side)
        mid = self.d11(deep)
        return mid, self.d12(mid)

    @staticmethod
    def _sample(mu: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
        if not sample:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor, *, sample: bool | None = None, latent_noise: float = 0.0) -> CvadOutput:
        """Reconstruct ``x``.

        Args:
            x: ``Tensor[N, C, s, s]`` in [0, 1].
            sample: draw z from the posterior (default: in training mode only);
                otherwise z = mu, so inference is deterministic.
            latent_noise: standard deviation of a Gaussian perturbation added to
                both latent means (the discriminator's perturbed reconstructions).
        """
        sample = self.training if sample is None else sample
        low, mu1, logvar1 = self.encode(x)
        if latent_noise:
            mu1 = mu1 + latent_noise * torch.randn_like(mu1)
        z1 = self._sample(mu1, logvar1, sample)
        mid, logits1 = self.decode_main(z1)
        stats = self.e2(torch.cat([low, mid], dim=1))
        mu2, logvar2 = stats[:, : self.branch_channels], stats[:, self.branch_channels :]
        if latent_noise:
            mu2 = mu2 + latent_noise * torch.randn_like(mu2)
        logits2 = self.d2(self._sample(mu2, logvar2, sample))
        return CvadOutput(
            image=torch.sigmoid(0.5 * (logits1 + logits2)),
            main=torch.sigmoid(logits1),
            branch=torch.sigmoid(logits2),
            mu1=mu1, logvar1=logvar1, mu2=mu2, logvar2=logvar2,
        )


class CvadDiscriminator(nn.Module):
    """Five Conv(k4, s2, p1) + BN + LeakyReLU(0.2), then FC → sigmoid = P(fake/OOD): ``Tensor[N]``."""

    def __init__(self, *, channels: int = 1, width: int = 16, input_size: int = 64) -> None:
        super().__init__()
        _check_geometry(input_size, channels, width, levels=5)
        w = [width * 2 ** k for k in range(5)]
        self.features = nn.Sequential(*[_down(c_in, c_out, leaky=True) for c_in, c_out in zip([channels, *w[:-1]], w)])
        side = input_size // 32
        self.fc = nn.Linear(w[4] * side * side, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(torch.flatten(self.features(x), 1))).squeeze(1)


class CvadNet(nn.Module):
    """CVAD = :class:`CvadGenerator` + :class:`CvadDiscriminator` (one weights file)."""

    def __init__(self, *, channels: int = 1, width: int = 16, input_size: int = 64, latent: int = 512) -> None:
        super().__init__()
        self.generator = CvadGenerator(channels=channels, width=width, input_size=input_size, latent=latent)
        self.discriminator = CvadDiscriminator(channels=channels, width=width, input_size=input_size)


def build_ood_autoencoder(*, channels: int = 1, width: int = 16, input_size: int = 64) -> ConvAutoencoder:
    """Registry builder ``ood-autoencoder``."""
    return ConvAutoencoder(channels=channels, width=width, input_size=input_size)


def build_tend(*, channels: int = 1, width: int = 16, input_size: int = 64, embedding: int = 512) -> TendNet:
    """Registry builder ``tend``."""
    return TendNet(channels=channels, width=width, input_size=input_size, embedding=embedding)


def build_cvad(*, channels: int = 1, width: int = 16, input_size: int = 64, latent: int = 512) -> CvadNet:
    """Registry builder ``cvad``."""
    return CvadNet(channels=channels, width=width, input_size=input_size, latent=latent)
