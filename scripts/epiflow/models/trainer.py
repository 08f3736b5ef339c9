"""The training loop every torch model shares: seeded and deterministic on CPU, early stopping on the validation
rows, mixed precision (bfloat16 autocast) on CUDA, a checkpoint every epoch and resume from it.

A resumed fit is bit-identical to an uninterrupted one because everything random in an epoch — the batch order,
dropout, augmentation — is seeded from (seed, epoch) alone, and all other state lives in the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from epiflow.models.base import Model, PairData

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)
PREDICT_BATCH = 4096  # rows per forward pass when scoring (bounded memory on large sets)


def seed_everything(seed: int, epoch: int = 0) -> None:
    """Seed torch's global generator (dropout, init) from (seed, epoch); deterministic kernels where it matters."""
    import torch

    torch.manual_seed(int(seed) * 100_003 + int(epoch))
    torch.use_deterministic_algorithms(True, warn_only=True)


def bce_loss(logits: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor, reduction: str = "mean"):
    """Class-weighted binary cross-entropy on logits (float32 even under autocast)."""
    from torch import nn

    return nn.functional.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight, reduction=reduction)


class TorchModel(Model):
    """Base of the torch models. Subclasses define prepare(), build(), tensors() and, optionally, train_loss(),
    epoch_data() and extra_state(); fit(), predict() and embed() are shared.

    tensors(data) returns a dict of device tensors with at least `y` and `env` (training cell-line index, -1 if
    unknown); the net's forward(batch) returns {"logit": (n,), "embedding": (n, d), ...}.

    torch is imported where it is used, so that the model registry (read by the Snakefile at parse time, once per job
    on a cluster) does not import it.
    """

    uses_gpu = True
    defaults = {"epochs": 30, "patience": 5, "batch_size": 256, "lr": 0.002, "weight_decay": 1e-4}
    optional = {"predict_batch": PREDICT_BATCH}

    def __init__(self, params: dict, seed: int, checkpoint: Path | None = None, device: str = "cpu"):
        super().__init__(params, seed, checkpoint, device)  # self.device: "cpu", "cuda:0", ... as torch takes it
        self.amp = str(device).startswith("cuda")

    # ---- hooks
    def prepare(self, train: PairData) -> None:
        """Fit input normalizers on the training rows (deterministic, so a resumed fit recomputes the same)."""

    def build(self, train: PairData) -> nn.Module:
        raise NotImplementedError

    def tensors(self, data: PairData) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def epoch_data(self, train: PairData, epoch: int) -> PairData:
        """The training rows of one epoch (augmentations override this; seeded by (seed, epoch))."""
        return train

    def train_loss(self, net: nn.Module, batch: dict, state: dict) -> torch.Tensor:
        return bce_loss(net(batch)["logit"], batch["y"], self.pos_weight)

    # ---- shared machinery
    def environments(self, train: PairData) -> None:
        self.env_names = sorted(train.frame["cell_line"].astype(str).unique())

    def env_index(self, data: PairData) -> np.ndarray:
        lookup = {name: i for i, name in enumerate(self.env_names)}
        return data.frame["cell_line"].astype(str).map(lookup).fillna(-1).to_numpy(np.int64)

    def fingerprint(self, train: PairData, val: PairData) -> str:
        """What a checkpoint must match to be resumed: params, seed and the rows fitted on."""
        text = json.dumps([self.params, self.seed, train.columns, len(train), len(val)], sort_keys=True, default=str)
        text += "".join(train.frame["pair_id"].astype(str)) + "".join(val.frame["pair_id"].astype(str))
        return hashlib.sha256(text.encode()).hexdigest()

    def resume(self, opt: torch.optim.Optimizer, key: str) -> dict | None:
        if self.checkpoint is None or not Path(self.checkpoint).exists():
            return None
        import torch

        saved = torch.load(self.checkpoint, weights_only=False, map_location=self.device)
        if saved.get("fingerprint") != key:
            log.info("checkpoint %s is from another configuration or data: starting afresh", self.checkpoint)
            return None
        self.net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        log.info("resumed %s at epoch %d", self.checkpoint, saved["state"]["epoch"])
        return saved["state"]

    def save(self, opt: torch.optim.Optimizer, state: dict, key: str) -> None:
        if self.checkpoint is None:
            return
        import torch

        tmp = Path(str(self.checkpoint) + ".tmp")
        torch.save({"net": self.net.state_dict(), "opt": opt.state_dict(), "state": state, "fingerprint": key}, tmp)
        tmp.replace(self.checkpoint)  # atomic: a kill mid-save leaves the previous epoch's checkpoint

    def autocast(self):
        import torch

        return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.amp)

    def forward_chunks(self, tensors: dict, key: str) -> torch.Tensor:
        """net(tensors)[key] in eval mode, in chunks of `predict_batch` rows (bounded memory on large sets)."""
        import torch

        self.net.eval()
        n, step = len(tensors["y"]), int(self.params.get("predict_batch", PREDICT_BATCH))
        with torch.no_grad(), self.autocast():
            parts = [self.net({k: v[i : i + step] for k, v in tensors.items()})[key].float() for i in range(0, n, step)]
        return torch.cat(parts) if parts else torch.zeros(0, device=self.device)

    def val_loss(self, val_tensors: dict) -> float:
        return float(bce_loss(self.forward_chunks(val_tensors, "logit"), val_tensors["y"], self.pos_weight))

    def fit(self, train: PairData, val: PairData) -> Model:
        train, val = self.inputs(train), self.inputs(val)
        import torch

        p = self.params
        seed_everything(self.seed)
        self.environments(train)
        self.prepare(train)
        self.net = self.build(train).to(self.device)
        opt = torch.optim.AdamW(self.net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        rate = max(float(train.y.mean()), 1e-6)
        self.pos_weight = torch.tensor((1 - rate) / rate, device=self.device)
        key = self.fingerprint(train, val)
        state = self.resume(opt, key) or {"epoch": 0, "best_loss": np.inf, "best_state": None, "bad": 0}
        self.load_extra_state(state)
        xv = self.tensors(val)
        cached = None
        while state["epoch"] < int(p["epochs"]) and state["bad"] < int(p["patience"]):
            epoch = state["epoch"]
            seed_everything(self.seed, epoch + 1)  # dropout of this epoch, whether resumed or not
            rows = self.epoch_data(train, epoch)
            xt = cached if (rows is train and cached is not None) else self.tensors(rows)
            cached = xt if rows is train else None
            self.net.train()
            order = torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(len(rows)))
            for batch in order.split(int(p["batch_size"])):
                opt.zero_grad()
                with self.autocast():
                    loss = self.train_loss(self.net, {k: v[batch] for k, v in xt.items()}, state | {"epoch": epoch})
                loss.backward()
                opt.step()
            loss = self.val_loss(xv)
            if loss < state["best_loss"]:
                best = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                state.update(best_loss=loss, bad=0, best_state=best)
            else:
                state["bad"] += 1
            state["epoch"] += 1
            state.update(self.extra_state())
            self.save(opt, state, key)
        self.net.load_state_dict(state["best_state"])
        self.epochs_run, self.best_val_loss = state["epoch"], state["best_loss"]
        return self

    def extra_state(self) -> dict:
        """Training state beyond the net and optimizer that a resume needs (e.g. group weights)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what extra_state() saved (called with a fresh state too)."""

    def predict(self, data: PairData) -> np.ndarray:
        import torch

        logit = self.forward_chunks(self.tensors(self.inputs(data)), "logit")
        return torch.sigmoid(logit).cpu().numpy().astype(np.float64)

    def embed(self, data: PairData) -> np.ndarray:
        return self.forward_chunks(self.tensors(self.inputs(data)), "embedding").cpu().numpy()
