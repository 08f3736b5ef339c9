"""Torch EPI models: `epinet_small` (an MLP on the tabular features) and `epinet` (1-D convolutions over the context
profile + E/P/W, distance and topology features + a sequence tower), with the invariance options of
epiflow.models.invariance and the energy head of epiflow.models.energy. Named presets in EPINET_PRESETS."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from epiflow.models.base import PairData, column_groups
from epiflow.models.trainer import TorchModel, bce_loss

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

# Model names that preset epinet options (config `model_params.<name>` still overrides each value).
EPINET_PRESETS = {
    "epinet_dann": {"dann": 0.3},
    "epinet_cdann": {"cdann": 1.0},
    "epinet_cip": {"cip": 1.0},
    "epinet_irm": {"irm": 1.0},
    "epinet_vrex": {"vrex": 3.0},
    "epinet_groupdro": {"groupdro": 0.05},
    "epinet_swap": {"context_swap": 0.5},
    "epinet_screen": {"screen_marks": True},
    # the screen decided by gbm (no network seed noise in the decision), epinet fitted on the marks it kept
    "epinet_screen_gbm": {"screen_marks": True, "screen_with": "gbm"},
    "epinet_energy": {"energy": True},
    "epinet_notopo": {"exclude_columns": ["topology"]},
    "checkpoint18": {"energy": True, "dann": 0.3, "orthogonality": 0.1, "sparsity": 0.01},
}


class EpiNetBase(TorchModel):
    """Input handling shared by the epinet models: log1p on mark signal, standardization on training rows."""

    use_profile = False
    optional = TorchModel.optional | {"no_sequence": False}

    def prepare(self, train: PairData) -> None:
        marks = set(column_groups(train.columns)["marks"])
        self.context_cols = [c for c in train.columns if c in marks]
        self.locus_cols = [c for c in train.columns if c not in marks]
        self.use_seq = train.seq is not None and not self.params.get("no_sequence", self.optional["no_sequence"])
        table = self.transform_table(train)
        self.mean, self.std = table.mean(axis=0), table.std(axis=0) + 1e-6
        self.has_profile = self.use_profile and train.profile is not None and train.profile.shape[1] > 0
        if self.has_profile:
            prof = np.log1p(np.maximum(train.profile, 0))
            self.p_mean, self.p_std = prof.mean(axis=(0, 2))[:, None], prof.std(axis=(0, 2))[:, None] + 1e-6

    def transform_table(self, data: PairData) -> np.ndarray:
        # marks are non-negative signal with heavy tails: log1p before standardizing
        context = np.log1p(np.maximum(data.select(self.context_cols), 0))
        return np.hstack([data.select(self.locus_cols), context]).astype(np.float64)

    def tensors(self, data: PairData) -> dict[str, torch.Tensor]:
        import torch

        table = ((self.transform_table(data) - self.mean) / self.std).astype(np.float32)
        k = len(self.locus_cols)
        out = {
            "locus": torch.from_numpy(np.ascontiguousarray(table[:, :k])),
            "context": torch.from_numpy(np.ascontiguousarray(table[:, k:])),
            "y": torch.from_numpy(data.y),
            "env": torch.from_numpy(self.env_index(data)),
        }
        if self.has_profile:
            out["profile"] = torch.from_numpy(
                ((np.log1p(np.maximum(data.profile, 0)) - self.p_mean) / self.p_std).astype(np.float32)
            )
        if self.use_seq:
            out["seq"] = torch.from_numpy(np.ascontiguousarray(data.seq, dtype=np.uint8))
        return {k: v.to(self.device) for k, v in out.items()}


class EpiNetSmall(EpiNetBase):
    """MLP over the standardized tabular features (+ sequence tower when sequence exists)."""

    family = "neural network: MLP on the features (torch)"
    needs = ("distance", "tracks", "tads", "sequence")

    defaults = TorchModel.defaults | {"epochs": 30, "patience": 5, "batch_size": 128, "hidden": 64, "dropout": 0.1}

    def build(self, train: PairData) -> nn.Module:
        from epiflow.models.networks import FlatModule, Inputs, SequenceTower

        p = self.params
        tables = {"locus": len(self.locus_cols), "context": len(self.context_cols)}
        inputs = Inputs(tables, None, SequenceTower() if self.use_seq else None)
        return FlatModule(inputs, int(p["hidden"]), int(p["hidden"]), float(p["dropout"]))


class EpiNet(EpiNetBase):
    """Profile convolutions + table + sequence towers, an embedding, a head; invariance options (0 = off):

    dann (weight of the gradient-reversed cell-line loss), cdann (the same within each class: line predicted from
    the embedding given the label), irm (IRMv1 penalty weight), vrex (risk-variance weight),
    groupdro (group-weight step size), context_swap (fraction of rows given another line's context where labels
    agree), cip (conditional invariance penalty on the logit: each class scored alike in every training line),
    energy (U_I - R_E head), orthogonality / sparsity (the seed's losses, energy only). Penalties ramp up
    linearly over `ramp_epochs`.
    """

    use_profile = True
    family = "neural network: convolutions over the profiles + features (torch)"
    needs = ("distance", "tracks", "profiles", "tads", "sequence")
    defaults = TorchModel.defaults | {
        "epochs": 25, "patience": 4, "batch_size": 256, "lr": 0.003, "hidden": 64, "embed_dim": 32,
        "channels": 16, "dropout": 0.1, "ramp_epochs": 3, "dann": 0.0, "cdann": 0.0, "cip": 0.0, "irm": 0.0,
        "vrex": 0.0, "groupdro": 0.0, "context_swap": 0.0, "energy": False, "orthogonality": 0.0, "sparsity": 0.0,
    }  # fmt: skip

    def build(self, train: PairData) -> nn.Module:
        from epiflow.models import invariance as inv
        from epiflow.models.energy import EnergyModule
        from epiflow.models.networks import FlatModule, Inputs, ProfileTower, SequenceTower

        p = self.params
        hidden, width, dropout = int(p["hidden"]), int(p["embed_dim"]), float(p["dropout"])
        profile = ProfileTower(train.profile.shape[1], int(p["channels"])) if self.has_profile else None
        seq = SequenceTower() if self.use_seq else None
        if p["energy"]:
            locus = Inputs({"locus": len(self.locus_cols)}, None, seq)
            context = Inputs({"context": len(self.context_cols)}, profile, None)
            net = EnergyModule(locus, locus.width, context, context.width, p)
        else:
            inputs = Inputs({"locus": len(self.locus_cols), "context": len(self.context_cols)}, profile, seq)
            net = FlatModule(inputs, hidden, width, dropout)
        embedding = width * (2 if p["energy"] else 1)  # the energy head's embedding is [z_U, z_R]
        if float(p["dann"]) > 0:
            net.discriminator = inv.Discriminator(embedding, len(self.env_names))
        if float(p["cdann"]) > 0:
            net.cond_discriminator = inv.ConditionalDiscriminator(embedding, len(self.env_names))
        return net

    def prepare(self, train: PairData) -> None:
        super().prepare(train)
        if float(self.params["context_swap"]) > 0:
            from epiflow.models import invariance as inv

            self.matches = inv.locus_matches(train.frame)
            log.info(
                "context swap: %d of %d rows have an agreeing partner",
                self.matches[self.matches.agree].recipient.nunique(),
                len(train),
            )

    def epoch_data(self, train: PairData, epoch: int) -> PairData:
        rate = float(self.params["context_swap"])
        if rate <= 0:
            return train
        from epiflow.models import invariance as inv

        rng = np.random.default_rng([self.seed, epoch, 1])
        return inv.context_swap(train, self.matches, self.context_cols, rate, rng)[0]

    def load_extra_state(self, state: dict) -> None:
        import torch

        n = len(self.env_names)
        self.group_weights = state.get("group_weights", torch.full((n,), 1.0 / n)).to(self.device)

    def extra_state(self) -> dict:
        return {"group_weights": self.group_weights.detach().cpu().clone()}

    def train_loss(self, net: nn.Module, batch: dict, state: dict) -> torch.Tensor:
        from torch import nn

        from epiflow.models import invariance as inv
        from epiflow.models.energy import orthogonality_loss, sparsity_loss

        p, n_env = self.params, len(self.env_names)
        ramp = min(1.0, (state["epoch"] + 1) / max(int(p["ramp_epochs"]), 1))
        out = net(batch)
        losses = bce_loss(out["logit"], batch["y"], self.pos_weight, reduction="none")
        risks, present = inv.per_env_losses(losses, batch["env"], n_env)
        if float(p["groupdro"]) > 0:
            self.group_weights = inv.groupdro_update(self.group_weights, risks, present, float(p["groupdro"]))
            loss = (self.group_weights * risks).sum()
        else:
            loss = losses.mean()
        if float(p["vrex"]) > 0:
            loss = loss + ramp * float(p["vrex"]) * inv.vrex_penalty(risks, present)
        if float(p["cip"]) > 0:
            penalty = inv.conditional_mean_penalty(out["logit"], batch["y"], batch["env"], n_env)
            loss = loss + ramp * float(p["cip"]) * penalty
        if float(p["irm"]) > 0:
            penalty = inv.irm_penalty(out["logit"], batch["y"], batch["env"], n_env, self.pos_weight)
            loss = loss + ramp * float(p["irm"]) * penalty
        if net.discriminator is not None:
            env_logits = net.discriminator(out["embedding"], ramp * float(p["dann"]))
            loss = loss + nn.functional.cross_entropy(env_logits.float(), batch["env"])
        if net.cond_discriminator is not None:
            env_logits = net.cond_discriminator(out["embedding"], batch["y"], ramp * float(p["cdann"]))
            loss = loss + inv.class_balanced_env_loss(env_logits, batch["env"], batch["y"])
        if float(p["orthogonality"]) > 0 and "z_u" in out:
            loss = loss + float(p["orthogonality"]) * orthogonality_loss(out["z_u"], out["z_r"])
        if float(p["sparsity"]) > 0:
            loss = loss + float(p["sparsity"]) * sparsity_loss(out["embedding"])
        return loss
