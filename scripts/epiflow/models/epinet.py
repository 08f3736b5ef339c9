"""epinet_small: a small PyTorch network on the tabular features, plus enhancer/promoter sequence when present."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from epiflow.models.base import Model, PairData

log = logging.getLogger(__name__)


def onehot(codes: np.ndarray) -> torch.Tensor:
    """(n, 2, length) int8 base codes -> (n, 2, 4, length) float32 one-hot; N (code 4) is all zeros."""
    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])
    return torch.from_numpy(np.ascontiguousarray(eye[codes].transpose(0, 1, 3, 2)))


class SequenceTower(nn.Module):
    """Shared 1-D convolution over one-hot enhancer and promoter sequence, max-pooled to motif presences."""

    def __init__(self, filters: int = 16, width: int = 10):
        super().__init__()
        self.conv = nn.Conv1d(4, filters, width)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        """onehot: (n, 2, 4, length) float, enhancer then promoter."""
        n, two, _, length = onehot.shape
        x = self.conv(onehot.reshape(n * two, 4, length)).relu().amax(dim=2)
        enhancer, promoter = x.reshape(n, two, -1).unbind(1)
        # the product lets the head see motif *pairing*, not only presence
        return torch.cat([enhancer, promoter, enhancer * promoter], dim=1)


class EpiNetSmallModule(nn.Module):
    def __init__(self, n_features: int, hidden: int, use_seq: bool):
        super().__init__()
        self.seq = SequenceTower() if use_seq else None
        width = n_features + (48 if use_seq else 0)
        self.body = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, 1)

    def embed(self, table: torch.Tensor, seq: torch.Tensor | None) -> torch.Tensor:
        x = table if self.seq is None else torch.cat([table, self.seq(seq)], dim=1)
        return self.body(x)

    def forward(self, table: torch.Tensor, seq: torch.Tensor | None) -> torch.Tensor:
        return self.head(self.embed(table, seq)).squeeze(1)


class EpiNetSmall(Model):
    """MLP over standardized features (+ sequence tower); early stopping on validation loss; checkpoint per epoch."""

    uses_gpu = True
    defaults = {"epochs": 30, "patience": 5, "batch_size": 128, "lr": 0.002, "hidden": 64, "weight_decay": 1e-4}

    def __init__(self, params: dict, seed: int, checkpoint: Path | None = None, device: str = "cpu"):
        super().__init__(params, seed, checkpoint, device)
        self.device = torch.device(device)

    def tensors(self, data: PairData) -> tuple[torch.Tensor, torch.Tensor | None]:
        table = torch.from_numpy(((data.table - self.mean) / self.std).astype(np.float32)).to(self.device)
        seq = None if (data.seq is None or not self.use_seq) else onehot(data.seq).to(self.device)
        return table, seq

    def fit(self, train: PairData, val: PairData) -> Model:
        torch.manual_seed(self.seed)
        self.mean = train.table.mean(axis=0)
        self.std = train.table.std(axis=0) + 1e-6
        self.use_seq = train.seq is not None
        p = self.params
        self.net = EpiNetSmallModule(train.table.shape[1], int(p["hidden"]), self.use_seq).to(self.device)
        opt = torch.optim.AdamW(self.net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        state = {"epoch": 0, "best_loss": np.inf, "best_state": None, "bad": 0}
        if self.checkpoint is not None and Path(self.checkpoint).exists():
            saved = torch.load(self.checkpoint, weights_only=False)
            self.net.load_state_dict(saved["net"])
            opt.load_state_dict(saved["opt"])
            state = saved["state"]
            log.info("resumed %s at epoch %d", self.checkpoint, state["epoch"])
        xt, st = self.tensors(train)
        yt = torch.from_numpy(train.y).to(self.device)
        xv, sv = self.tensors(val)
        yv = torch.from_numpy(val.y).to(self.device)
        pos_weight = torch.tensor((1 - train.y.mean()) / max(train.y.mean(), 1e-6), device=self.device)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        while state["epoch"] < int(p["epochs"]) and state["bad"] < int(p["patience"]):
            self.net.train()
            # the permutation depends only on (seed, epoch): a resumed run sees the same batches
            order = torch.from_numpy(np.random.default_rng([self.seed, state["epoch"]]).permutation(len(train)))
            for batch in order.split(int(p["batch_size"])):
                opt.zero_grad()
                loss = loss_fn(self.net(xt[batch], None if st is None else st[batch]), yt[batch])
                loss.backward()
                opt.step()
            self.net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(self.net(xv, sv), yv))
            if val_loss < state["best_loss"]:
                state.update(
                    best_loss=val_loss, bad=0, best_state={k: v.clone() for k, v in self.net.state_dict().items()}
                )
            else:
                state["bad"] += 1
            state["epoch"] += 1
            if self.checkpoint is not None:
                tmp = Path(str(self.checkpoint) + ".tmp")
                torch.save({"net": self.net.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
                tmp.replace(self.checkpoint)
        self.net.load_state_dict(state["best_state"])
        self.epochs_run = state["epoch"]
        return self

    def predict(self, data: PairData) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            return torch.sigmoid(self.net(*self.tensors(data))).cpu().numpy().astype(np.float64)

    def embed(self, data: PairData) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            return self.net.embed(*self.tensors(data)).cpu().numpy()
