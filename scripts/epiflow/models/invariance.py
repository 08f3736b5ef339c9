"""Invariance tools for training across cell lines (environments): gradient reversal (DANN), its label-conditional
form (CDANN), IRMv1, V-REx, GroupDRO weights, and the context swap augmentation (the seed's "causal intervention")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from epiflow.models.base import PairData


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by -coefficient backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


def reverse_gradient(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, coefficient)


class Discriminator(nn.Module):
    """A small MLP predicting the training cell line from an embedding (behind a gradient reversal)."""

    def __init__(self, width: int, n_env: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, n_env))

    def forward(self, embedding: torch.Tensor, coefficient: float) -> torch.Tensor:
        return self.net(reverse_gradient(embedding, coefficient))


class ConditionalDiscriminator(nn.Module):
    """CDANN (Li et al. 2018): one cell-line classifier per class, behind a gradient reversal.

    DANN makes the embedding's *marginal* distribution the same in every training line; a cue whose marginal level
    is the same everywhere while its link to the label is not (the demo's H2AZ) passes it untouched. Predicting the
    line from the embedding *within* each class targets exactly that: the encoder is pushed towards an embedding
    independent of the line given the label, the condition an invariant predictor satisfies."""

    def __init__(self, width: int, n_env: int, hidden: int = 32):
        super().__init__()
        self.n_env = n_env
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 2 * n_env))

    def forward(self, embedding: torch.Tensor, y: torch.Tensor, coefficient: float) -> torch.Tensor:
        """Per row, the line logits of its own class's classifier: (n, n_env)."""
        logits = self.net(reverse_gradient(embedding, coefficient)).view(-1, 2, self.n_env)
        return logits[torch.arange(len(y), device=y.device), y.long()]


def class_balanced_env_loss(env_logits: torch.Tensor, env: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the line classifier, averaged within each class present, then over classes (positives are
    a minority; each class's classifier counts equally)."""
    losses = nn.functional.cross_entropy(env_logits.float(), env, reduction="none")
    per_class = [losses[y == c].mean() for c in (0, 1) if bool((y == c).any())]
    return torch.stack(per_class).mean()


def conditional_mean_penalty(values: torch.Tensor, y: torch.Tensor, env: torch.Tensor, n_env: int) -> torch.Tensor:
    """CIP (Chen & Buhlmann 2021, conditional invariance penalty): within each class, the squared distance of each
    line's mean of `values` (n,) from the class mean over lines, averaged over the lines present, then over classes.

    On the logit it asks the model to score a class the same way in every training line: a cue whose link to the
    label differs between lines (stronger separation in one line than another) moves the lines' class means apart."""
    v = values.float()
    terms = []
    for c in (0, 1):
        rows = y == c
        means, present = per_env_losses(v[rows], env[rows], n_env)
        if int(present.sum()) >= 2:
            terms.append((means[present] - means[present].mean()).pow(2).mean())
    return torch.stack(terms).mean() if terms else v.new_zeros(())


def per_env_losses(losses: torch.Tensor, env: torch.Tensor, n_env: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of per-row `losses` within each environment; returns (risks (n_env,), present mask (n_env,))."""
    total = torch.zeros(n_env, device=losses.device, dtype=losses.dtype).index_add(0, env, losses)
    count = torch.zeros(n_env, device=losses.device, dtype=losses.dtype).index_add(0, env, torch.ones_like(losses))
    return total / count.clamp(min=1), count > 0


def irm_penalty(logits: torch.Tensor, y: torch.Tensor, env: torch.Tensor, n_env: int, pos_weight) -> torch.Tensor:
    """IRMv1 (Arjovsky et al. 2019): sum over environments of |d risk_e / d w|^2 at the dummy scale w = 1."""
    scale = torch.ones((), device=logits.device, requires_grad=True)
    penalty = logits.new_zeros(())
    for e in range(n_env):
        rows = env == e
        if rows.any():
            risk = nn.functional.binary_cross_entropy_with_logits(
                logits[rows].float() * scale, y[rows], pos_weight=pos_weight
            )
            (grad,) = torch.autograd.grad(risk, [scale], create_graph=True)
            penalty = penalty + grad.pow(2)
    return penalty


def vrex_penalty(risks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """V-REx (Krueger et al. 2021): variance of the per-environment risks present in the batch."""
    r = risks[present]
    return r.var(unbiased=False) if len(r) > 1 else risks.new_zeros(())


def groupdro_update(weights: torch.Tensor, risks: torch.Tensor, present: torch.Tensor, step: float) -> torch.Tensor:
    """GroupDRO (Sagawa et al. 2020) exponentiated-gradient step on the group weights; returns the new weights."""
    w = weights * torch.exp(step * risks.detach() * present)
    return w / w.sum()


def locus_matches(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of different cell lines at the same locus: same chrom and TSS (gene) and overlapping enhancers.

    Returns columns `recipient`, `donor` (row positions in frame) and `agree` (their labels are equal).
    """
    f = frame.reset_index(drop=True)
    key = f[["chrom", "tss", "gene", "cell_line", "enhancer_start", "enhancer_end", "label"]].assign(
        row=np.arange(len(f))
    )
    m = key.merge(key, on=["chrom", "tss", "gene"], suffixes=("_r", "_d"))
    m = m[
        (m.cell_line_r != m.cell_line_d)
        & (m.enhancer_start_r < m.enhancer_end_d)
        & (m.enhancer_start_d < m.enhancer_end_r)
    ]
    out = pd.DataFrame({"recipient": m.row_r.to_numpy(), "donor": m.row_d.to_numpy()})
    out["agree"] = m.label_r.to_numpy() == m.label_d.to_numpy()
    return out.sort_values(["recipient", "donor"], ignore_index=True)


def context_swap(
    data: PairData, matches: pd.DataFrame, context_columns: list[str], rate: float, rng: np.random.Generator
) -> tuple[PairData, np.ndarray]:
    """Give a `rate` fraction of rows the cell-specific context (table `context_columns` and profile) of another
    training line's pair at the same locus, only where that pair's label agrees with the row's own; the label and
    the locus features (distance, topology, sequence) stay the row's. Returns the new data and, per row, the donor
    row position (-1 where unchanged)."""
    agree = matches[matches["agree"]]
    donor = np.full(len(data), -1)
    if len(agree):
        # one random agreeing donor per recipient, then keep a `rate` fraction of recipients
        pick = agree.assign(u=rng.random(len(agree))).sort_values(["recipient", "u"]).drop_duplicates("recipient")
        pick = pick[rng.random(len(pick)) < rate]
        donor[pick["recipient"].to_numpy()] = pick["donor"].to_numpy()
    swapped = np.flatnonzero(donor >= 0)
    table = data.table.copy()
    cols = [data.columns.index(c) for c in context_columns]
    table[np.ix_(swapped, cols)] = data.table[np.ix_(donor[swapped], cols)]
    profile = None
    if data.profile is not None:
        profile = data.profile.copy()
        profile[swapped] = data.profile[donor[swapped]]
    return PairData(data.frame, table, data.columns, profile, data.seq), donor
