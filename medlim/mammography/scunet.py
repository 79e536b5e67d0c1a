"""SCU-Net (Simple Context U-Net) for breast arterial calcification segmentation.

Architecture only (thesis §3.3.2, Figure 3.7; exact layer list in
``spec/METHODS.md`` §1): a CGNet-style encoder with input injection and two
context-guided down blocks (local + dilated-surround depthwise convolutions,
squeeze-excitation), and a U-Net-style decoder with bilinear upsampling.
Input ``Tensor[N, 3, H, W]`` (the grey patch repeated to three channels, H and W
multiples of 8, 512 in practice); output ``Tensor[N, 1, H, W]`` **raw** (no
sigmoid): whether a set of weights' raw output is read as a probability
directly (soft-Dice training, the authors' checkpoints) or through a sigmoid is
a field of the weights' manifest, applied by the inference code.

169,711 trainable parameters, all used in the forward pass. Loading the
authors' published checkpoints (which carry extra, unused modules) is
:mod:`medlim.mammography.checkpoint`'s job; whole-image inference is
:mod:`medlim.mammography.inference`'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SCUNet", "build_scunet", "SCUNET_PARAMETER_COUNT"]

#: Trainable parameters of the forward path (METHODS.md §1; thesis: "79× fewer
#: than U-Net's 13,395,329").
SCUNET_PARAMETER_COUNT = 169_711

# CGNet uses eps 1e-3 in its own blocks; the U-Net decoder keeps PyTorch's default.
_ENCODER_BN_EPS = 1e-3


class ConvBNPReLU(nn.Module):
    """3×3 convolution (no bias), batch norm (eps 1e-3), per-channel PReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=_ENCODER_BN_EPS)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class FuseNorm(nn.Module):
    """Batch norm + per-channel PReLU + dropout after an input-injection concat."""

    def __init__(self, channels: int, *, dropout: float) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=_ENCODER_BN_EPS)
        self.act = nn.PReLU(channels)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.bn(x)))


class SqueezeExcitation(nn.Module):
    """Channel re-weighting: global average → Linear(c, c/r) → ReLU → Linear → sigmoid."""

    def __init__(self, channels: int, *, reduction: int) -> None:
        super().__init__()
        self.squeeze = nn.Linear(channels, channels // reduction)
        self.expand = nn.Linear(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3))
        gate = torch.sigmoid(self.expand(F.relu(self.squeeze(gate))))
        return x * gate[:, :, None, None]


class ContextGuidedDown(nn.Module):
    """Context-guided down block (CGNet): halves H and W, no residual.

    Strided ConvBNPReLU to ``out_channels``; a depthwise 3×3 (local features) and a
    depthwise 3×3 dilated by ``dilation`` (surrounding context) side by side;
    BN + PReLU over both; 1×1 reduction back to ``out_channels``; squeeze-excitation.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dilation: int, reduction: int) -> None:
        super().__init__()
        self.conv_down = ConvBNPReLU(in_channels, out_channels, stride=2)
        self.local = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False)
        self.surround = nn.Conv2d(
            out_channels, out_channels, 3, padding=dilation, dilation=dilation, groups=out_channels, bias=False
        )
        self.bn = nn.BatchNorm2d(2 * out_channels, eps=_ENCODER_BN_EPS)
        self.act = nn.PReLU(2 * out_channels)
        self.reduce = nn.Conv2d(2 * out_channels, out_channels, 1, bias=False)
        self.excite = SqueezeExcitation(out_channels, reduction=reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_down(x)
        joint = torch.cat([self.local(x), self.surround(x)], dim=1)
        return self.excite(self.reduce(self.act(self.bn(joint))))


class UpFuse(nn.Module):
    """Decoder step: bilinear ×2 (align_corners), pad to the skip, concat(skip, up), double conv.

    The double conv is (Conv3×3 with bias, BN, single-parameter PReLU) twice.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(),
        )

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(deep, scale_factor=2, mode="bilinear", align_corners=True)
        dy = skip.shape[2] - up.shape[2]
        dx = skip.shape[3] - up.shape[3]
        if dy or dx:
            up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.double_conv(torch.cat([skip, up], dim=1))


class SCUNet(nn.Module):
    """SCU-Net: ``Tensor[N, in_channels, H, W]`` → raw ``Tensor[N, classes, H, W]``.

    Shapes for a 512×512 patch: ``out0`` 16×256², ``out1`` 32×128², ``out2``
    64×64²; decoder 64×128² → 32×256² → bilinear ×2 → 1×1 conv → ``classes``×512².
    """

    def __init__(self, *, in_channels: int = 3, classes: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        self.level1_0 = ConvBNPReLU(in_channels, 16, stride=2)
        self.level1_1 = ConvBNPReLU(16, 16)
        self.level1_2 = ConvBNPReLU(16, 16)
        # Input injection: the (parameter-free) input pooled once and twice.
        self.inject = nn.AvgPool2d(3, stride=2, padding=1)
        self.b1 = FuseNorm(16 + in_channels, dropout=dropout)
        self.level2_0 = ContextGuidedDown(16 + in_channels, 32, dilation=2, reduction=8)
        self.b2 = FuseNorm(32 + in_channels, dropout=dropout)
        self.level3_0 = ContextGuidedDown(32 + in_channels, 64, dilation=4, reduction=16)
        self.up3 = UpFuse(32 + 64, 64)
        self.up4 = UpFuse(16 + 64, 32)
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out0 = self.level1_2(self.level1_1(self.level1_0(x)))
        inject1 = self.inject(x)
        inject2 = self.inject(inject1)
        out1 = self.level2_0(self.b1(torch.cat([out0, inject1], dim=1)))
        out2 = self.level3_0(self.b2(torch.cat([out1, inject2], dim=1)))
        decoded = self.up4(self.up3(out2, out1), out0)
        decoded = F.interpolate(decoded, scale_factor=2, mode="bilinear", align_corners=True)
        return self.head(decoded)


def build_scunet(*, in_channels: int = 3, classes: int = 1, dropout: float = 0.5) -> SCUNet:
    """Build an SCU-Net with freshly initialised weights (in training mode).

    Args:
        in_channels: input channels (3: the grey patch repeated, as published).
        classes: output channels (1 for BAC).
        dropout: dropout probability after the two input-injection fusions (0.5).

    Returns:
        The network; its output is raw (no sigmoid).
    """
    return SCUNet(in_channels=in_channels, classes=classes, dropout=dropout)
