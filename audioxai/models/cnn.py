"""The digit CNN family shared by images and spectrograms (chapter 1).

Four convolutional blocks (3x3 conv, batch norm, ReLU; max-pooling after the first three), global
average pooling and a linear layer. The first pooling grows with the input (``first_pool_for``), so the
last conv map is about 4x4 at every resolution: the same family sees the same relative receptive
field at 28, 64 or 128 pixels (a fixed 2x2 pool left the 128 models near chance after a short training). The last conv block is ``model.features[-1]``, the layer
Grad-CAM reads. Inputs are standardised inside the model with a fixed mean and standard deviation
(buffers set from the training set), so explanations are about the raw pixels or dB values.
ReLUs are modules, not functions, so guided backpropagation can override them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitCNN", "first_pool_for"]


def first_pool_for(input_size: int) -> int:
    """Pooling factor of the first block for inputs of side ``input_size``: ``max(2, input_size // 16)``.

    28 -> 2 (last map 3x3), 32 -> 2, 64 -> 4, 128 -> 8 (last map 4x4).
    """
    if int(input_size) < 8:
        raise ValueError(f"input_size={input_size}: DigitCNN needs inputs of at least 8x8")
    return max(2, int(input_size) // 16)


def _block(c_in: int, c_out: int, pool: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool > 1:
        layers.append(nn.MaxPool2d(pool))
    return nn.Sequential(*layers)


class DigitCNN(nn.Module):
    """A 4-conv-layer CNN for (B, 1, H, W) inputs of any size >= 8x8.

    Args:
        num_classes: output logits.
        channels: widths of the four conv blocks.
        input_mean, input_std: the standardisation applied before the first conv.
        dropout: before the linear layer.
        first_pool: max-pooling factor after the first block (2 for 28-32 pixel inputs; see
            ``first_pool_for``).
    """

    architecture = "cnn"

    def __init__(self, num_classes: int = 10, channels: tuple[int, int, int, int] = (16, 32, 64, 64),
                 input_mean: float = 0.0, input_std: float = 1.0, dropout: float = 0.2,
                 first_pool: int = 2) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))
        if int(first_pool) < 1:
            raise ValueError(f"first_pool={first_pool}: use a pooling factor of at least 1")
        self.first_pool = int(first_pool)
        self.features = nn.Sequential(_block(1, c1, self.first_pool), _block(c1, c2, 2), _block(c2, c3, 2),
                                      _block(c3, c4, 1))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(c4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features((x - self.input_mean) / self.input_std))
