"""The torch modules of the epinet models: towers over sequence and profiles, the input concatenation, the flat
MLP head. Kept apart from epiflow.models.epinet so that naming a model (the Snakefile's checks at parse time) does not
import torch; epinet imports this module when it builds a net."""

from __future__ import annotations

import torch
from torch import nn

from epiflow.models.energy import mlp


def onehot(codes: torch.Tensor) -> torch.Tensor:
    """(n, 2, length) integer base codes -> (n, 2, 4, length) float32 one-hot; N (code 4) is all zeros.

    Done per batch on the device, so a training set keeps 1 byte per base instead of 16."""
    return nn.functional.one_hot(codes.long(), 5)[..., :4].transpose(2, 3).float()


class SequenceTower(nn.Module):
    """Shared 1-D convolution over one-hot enhancer and promoter sequence, max-pooled to motif presences."""

    width = 48

    def __init__(self, filters: int = 16, kernel: int = 10):
        super().__init__()
        self.conv = nn.Conv1d(4, filters, kernel)
        self.width = 3 * filters

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (n, 2, length) base codes, enhancer then promoter."""
        n, two, length = codes.shape
        x = self.conv(onehot(codes).reshape(n * two, 4, length)).relu().amax(dim=2)
        enhancer, promoter = x.reshape(n, two, -1).unbind(1)
        # the product lets the head see motif *pairing*, not only presence
        return torch.cat([enhancer, promoter, enhancer * promoter], dim=1)


class ProfileTower(nn.Module):
    """Two 1-D convolutions over the (marks, bins) context profile, then mean- and max-pooling over bins."""

    def __init__(self, marks: int, channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(marks, channels, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU(),
        )  # fmt: skip
        self.width = 2 * channels

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        x = self.conv(profile)
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)


class Inputs(nn.Module):
    """Concatenates the named inputs of a batch (table parts, profile tower, sequence tower) into one vector."""

    def __init__(self, tables: dict[str, int], profile: ProfileTower | None, seq: SequenceTower | None):
        super().__init__()
        self.tables, self.profile, self.seq = list(tables), profile, seq
        self.width = sum(tables.values()) + (profile.width if profile else 0) + (seq.width if seq else 0)

    def forward(self, batch: dict) -> torch.Tensor:
        parts = [batch[name] for name in self.tables]
        if self.profile is not None:
            parts.append(self.profile(batch["profile"]))
        if self.seq is not None:
            parts.append(self.seq(batch["seq"]))
        return torch.cat(parts, dim=1)


class FlatModule(nn.Module):
    """inputs -> MLP -> embedding -> logit."""

    def __init__(self, inputs: Inputs, hidden: int, embed_dim: int, dropout: float):
        super().__init__()
        self.inputs, self.body, self.head = (
            inputs,
            mlp(inputs.width, hidden, embed_dim, dropout),
            nn.Linear(embed_dim, 1),
        )
        self.discriminator: nn.Module | None = None
        self.cond_discriminator: nn.Module | None = None

    def forward(self, batch: dict) -> dict:
        z = self.body(self.inputs(batch))
        return {"logit": self.head(z).squeeze(1), "embedding": z}
