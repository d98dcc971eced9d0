"""A tiny CNN trained from scratch, for the demo world and the tests.

Real backbones (ResNet-50, EfficientNet-B3, Xception, …) need pretrained weights that cannot be
fetched on the machines here (DESIGN.md, "Machines here"); this network stands in for them: about
100k parameters, 64–112 px input, fast enough on two CPU cores to train in the demo. It has the same
shape of interface as the torchvision classifiers the registry strips: a convolutional trunk, global
average pooling, and a final linear layer `fc` whose input is the feature vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_WIDTHS = (16, 32, 64, 128)


class TinyCNN(nn.Module):
    """Conv(3×3)–BN–ReLU blocks, 2× max-pooling between them, global average pool, `fc`.

    With the default widths (16, 32, 64, 128) the trunk has ~98k parameters and yields a
    128-d feature vector; at 112 px the last block runs at 14×14. `num_classes=0` leaves `fc`
    as the identity, so `forward` returns the pooled features.
    """

    def __init__(
        self,
        num_classes: int = 0,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        in_chans: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not widths:
            raise ValueError("TinyCNN needs at least one conv block")
        blocks: list[nn.Module] = []
        c_in = in_chans
        for i, c_out in enumerate(widths):
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:  # the last block feeds the global pool directly
                blocks.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = int(widths[-1])
        self.widths = tuple(int(w) for w in widths)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_classes = int(num_classes)
        self.fc: nn.Module = (
            nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, num_features): the pooled activations before `fc`."""
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.forward_features(x)))


def tiny_cnn(num_classes: int = 0, **kwargs) -> TinyCNN:
    """Factory used by the backbone registry (name "tiny_cnn")."""
    return TinyCNN(num_classes=num_classes, **kwargs)
