"""The digit CNN family shared by images and spectrograms (chapter 1).

Four convolutional blocks (3x3 conv, batch norm, ReLU; max-pooling after the first three), global
average pooling and a linear layer. The last conv block is ``model.features[-1]``, the layer
Grad-CAM reads. Inputs are standardised inside the model with a fixed mean and standard deviation
(buffers set from the training set), so explanations are about the raw pixels or dB values.
ReLUs are modules, not functions, so guided backpropagation can override them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitCNN"]


def _block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class DigitCNN(nn.Module):
    """A 4-conv-layer CNN for (B, 1, H, W) inputs of any size >= 8x8.

    Args:
        num_classes: output logits.
        channels: widths of the four conv blocks.
        input_mean, input_std: the standardisation applied before the first conv.
        dropout: before the linear layer.
    """

    architecture = "cnn"

    def __init__(self, num_classes: int = 10, channels: tuple[int, int, int, int] = (16, 32, 64, 64),
                 input_mean: float = 0.0, input_std: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))
        self.features = nn.Sequential(_block(1, c1, True), _block(c1, c2, True), _block(c2, c3, True),
                                      _block(c3, c4, False))
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(c4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features((x - self.input_mean) / self.input_std))
