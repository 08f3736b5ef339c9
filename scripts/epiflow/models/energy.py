"""The seed's energy head: probability = sigmoid(U_I - R_E).

U_I (interaction energy) sees only what a locus carries in every cell line — sequence, distance, topology priors —
so it is shared across cell lines by construction; R_E (environment term) sees the cell-specific context (marks'
E/P/W signal and context profiles). `checkpoint18` adds the seed's orthogonality and sparsity losses on the two
embeddings and a gradient-reversal domain loss.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(width: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out), nn.ReLU())


class EnergyModule(nn.Module):
    """Two towers and two scalar heads; forward(batch) -> logit = U_I - R_E, embedding = [z_U, z_R], u, r, z_u, z_r.

    locus_tower(batch) / context_tower(batch) are callables returning the (n, width) inputs of each tower.
    """

    def __init__(self, locus_tower: nn.Module, locus_width: int, context_tower: nn.Module, context_width: int, cfg):
        super().__init__()
        self.locus_tower, self.context_tower = locus_tower, context_tower
        hidden, width, dropout = int(cfg["hidden"]), int(cfg["embed_dim"]), float(cfg["dropout"])
        self.u_body = mlp(locus_width, hidden, width, dropout)
        self.r_body = mlp(context_width, hidden, width, dropout)
        self.u_head, self.r_head = nn.Linear(width, 1), nn.Linear(width, 1)
        self.discriminator: nn.Module | None = None
        self.cond_discriminator: nn.Module | None = None

    def forward(self, batch: dict) -> dict:
        z_u = self.u_body(self.locus_tower(batch))
        z_r = self.r_body(self.context_tower(batch))
        u, r = self.u_head(z_u).squeeze(1), self.r_head(z_r).squeeze(1)
        return {"logit": u - r, "u": u, "r": r, "z_u": z_u, "z_r": z_r, "embedding": torch.cat([z_u, z_r], dim=1)}


def orthogonality_loss(z_u: torch.Tensor, z_r: torch.Tensor) -> torch.Tensor:
    """Mean squared correlation between every U_I and every R_E embedding unit over the batch (0 = orthogonal)."""
    a = nn.functional.normalize(z_u.float() - z_u.float().mean(0), dim=0)
    b = nn.functional.normalize(z_r.float() - z_r.float().mean(0), dim=0)
    return (a.T @ b).pow(2).mean()


def sparsity_loss(embedding: torch.Tensor) -> torch.Tensor:
    """L1 of the embedding activations (the seed's sparsity term)."""
    return embedding.float().abs().mean()
