"""Models: every registered model on a tiny synthetic fixture, and the invariance machinery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from epiflow.models import PairData, available_models, make_model
from epiflow.models import invariance as inv
from epiflow.models.base import column_groups
from epiflow.models.energy import orthogonality_loss
from epiflow.models.trainer import TorchModel

MARKS = ["H3K27ac", "DNase", "H2AZ"]
COLUMNS = [f"{m}_{r}" for m in MARKS for r in ("enhancer", "promoter", "window")]
COLUMNS += ["log_distance", "same_tad", "tad_boundaries_crossed"]
FAST = {"epochs": 4, "patience": 2, "batch_size": 64, "hidden": 16, "embed_dim": 8, "channels": 4}


def synthetic_line(line: str, loci: pd.DataFrame, shared: np.ndarray, rng: np.random.Generator) -> PairData:
    """One cell line: labels from shared activity + distance + line noise; marks track activity."""
    n = len(loci)
    activity = shared + 0.5 * rng.standard_normal(n)
    logd = np.log10(loci["distance"].to_numpy())
    label = (activity - 1.5 * (logd - 4.5) + 0.3 * rng.standard_normal(n) > 1.0).astype(int)
    jitter = rng.integers(-50, 50, n)  # peaks are called per line: enhancers overlap across lines, not equal
    frame = loci.assign(
        cell_line=line,
        enhancer_start=loci["enhancer_start"] + jitter,
        enhancer_end=loci["enhancer_end"] + jitter,
        label=label,
        pair_id=[f"{line}:{i}" for i in range(n)],
        fold=-1,
    )
    signal = np.exp(activity)[:, None] * rng.lognormal(0, 0.3, (n, len(MARKS)))
    table = np.zeros((n, len(COLUMNS)), np.float32)
    table[:, 0:9:3] = signal
    table[:, 1:9:3] = rng.lognormal(0, 0.5, (n, len(MARKS)))
    table[:, 2:9:3] = rng.lognormal(-1, 0.5, (n, len(MARKS)))
    table[:, 9] = logd
    table[:, 10] = rng.random(n) < 0.5
    table[:, 11] = rng.poisson(1, n)
    profile = (signal[:, :, None] * rng.lognormal(0, 0.2, (n, len(MARKS), 8))).astype(np.float32)
    seq = rng.integers(0, 4, (n, 2, 24)).astype(np.int8)
    return PairData(frame, table, list(COLUMNS), profile, seq)


def synthetic(n: int = 160, seed: int = 0, lines=("lineA", "lineB", "lineC", "lineD")) -> dict[str, PairData]:
    rng = np.random.default_rng(seed)
    tss = np.repeat(np.arange(n // 8) * 200_000 + 50_000, 8)
    distance = rng.integers(5_000, 100_000, n)
    loci = pd.DataFrame(
        {
            "chrom": np.where(np.arange(n) < n // 2, "chr1", "chr2"),
            "tss": tss,
            "gene": [f"G{t}" for t in tss],
            "promoter_start": tss - 1000,
            "promoter_end": tss + 1000,
            "enhancer_start": tss + distance - 400,
            "enhancer_end": tss + distance + 400,
            "distance": distance,
        }
    )
    shared = rng.standard_normal(n)
    return {line: synthetic_line(line, loci, shared, rng) for line in lines}


def concat(parts: list[PairData]) -> PairData:
    return PairData(
        pd.concat([p.frame for p in parts], ignore_index=True),
        np.concatenate([p.table for p in parts]),
        parts[0].columns,
        np.concatenate([p.profile for p in parts]),
        np.concatenate([p.seq for p in parts]),
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Training jobs run with threads: 1; more threads only thrash on the shared 2-core CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lines():
    return synthetic()


@pytest.fixture(scope="module")
def split(lines):
    return concat([lines["lineA"], lines["lineB"]]), lines["lineC"], lines["lineD"]


def test_registry_has_the_zoo():
    names = set(available_models())
    zoo = {"distance", "gbm", "gbm_notopo", "abc", "propensity", "epinet_small", "epinet", "checkpoint18"}
    zoo |= {f"epinet_{v}" for v in ("dann", "cdann", "cip", "irm", "vrex", "groupdro", "swap", "energy", "notopo")}
    assert zoo <= names
    assert available_models()["checkpoint18"].defaults["energy"] is True
    assert available_models()["epinet"].uses_gpu and not available_models()["gbm"].uses_gpu
    assert make_model("epinet_irm", {"irm": 7.0}, 0).params["irm"] == 7.0  # config params win over the preset
    with pytest.raises(KeyError, match="unknown model"):
        make_model("nope", {}, 0)


def test_naming_and_checking_models_imports_neither_torch_nor_sklearn():
    """The Snakefile checks every model and its params when it is parsed, which a cluster does once per job: the
    registry, the param checks and an instance (make_model) stay free of torch, sklearn and scipy (2.6 s, 1.9 s to
    import here); fitting imports them."""
    code = """
import sys
from epiflow.models import available_models, make_model
from epiflow.metrics import check_threshold_rule
from epiflow.selection import check_model_params
for name in available_models():
    check_model_params(name, {})
make_model("epinet_small", {}, 0, device="cuda:0")
print(sorted(m for m in ("torch", "sklearn", "scipy") if m in sys.modules))
"""
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    result = subprocess.run([sys.executable, "-c", code], cwd=scripts, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_gbm_optional_params_are_sklearns_defaults():
    from sklearn.ensemble import HistGradientBoostingClassifier

    optional = dict(available_models()["gbm"].optional)
    assert optional.pop("line_balance") is False
    assert optional == {k: v for k, v in HistGradientBoostingClassifier().get_params().items() if k in optional}
    assert len(optional) == 6


@pytest.mark.parametrize("name", sorted(available_models()))
def test_model_beats_chance(name, split):
    train, val, test = split
    params = FAST if available_models()[name].uses_gpu else {}
    model = make_model(name, params, seed=0).fit(train, val)
    scores = model.predict(test)
    assert scores.shape == (len(test),) and np.all((scores >= 0) & (scores <= 1))
    aupr = average_precision_score(test.y, scores)
    assert aupr > test.y.mean() + 0.1, (name, aupr, test.y.mean())
    embedding = model.embed(test)
    if isinstance(model, TorchModel):
        assert embedding.shape[0] == len(test) and np.isfinite(embedding).all()


def test_gradient_reversal_flips_the_discriminator_gradient():
    torch.manual_seed(0)
    disc = inv.Discriminator(6, 3)
    z = torch.randn(10, 6, requires_grad=True)
    env = torch.randint(0, 3, (10,))
    grads = []
    for coefficient in (0.0, 0.5):
        z.grad = None
        logits = disc.net(z) if coefficient == 0 else disc(z, coefficient)
        torch.nn.functional.cross_entropy(logits, env).backward()
        grads.append(z.grad.clone())
    plain, reversed_ = grads
    assert torch.allclose(reversed_, -0.5 * plain)
    assert (torch.sign(reversed_) == -torch.sign(plain))[plain != 0].all()
    # the discriminator's own weights still descend its loss: only the embedding's gradient is reversed
    w = [p.grad.clone() for p in disc.parameters()]
    assert all(g.abs().sum() > 0 for g in w)


def test_context_swap_keeps_labels_consistent(split):
    train = split[0]
    matches = inv.locus_matches(train.frame)
    f = train.frame
    r, d = matches.recipient.to_numpy(), matches.donor.to_numpy()
    assert (f.cell_line.to_numpy()[r] != f.cell_line.to_numpy()[d]).all()
    assert (f.tss.to_numpy()[r] == f.tss.to_numpy()[d]).all()
    assert (f.enhancer_start.to_numpy()[r] < f.enhancer_end.to_numpy()[d]).all()
    assert matches.agree.any() and not matches.agree.all()
    context = column_groups(train.columns)["marks"]
    swapped, donor = inv.context_swap(train, matches, context, 1.0, np.random.default_rng(0))
    moved = np.flatnonzero(donor >= 0)
    assert len(moved) > 0
    assert (train.y[moved] == train.y[donor[moved]]).all()  # only where both lines agree
    assert np.array_equal(swapped.y, train.y) and swapped.frame is train.frame
    ctx = [train.columns.index(c) for c in context]
    locus = [i for i in range(len(train.columns)) if i not in ctx]
    assert np.array_equal(swapped.table[moved][:, ctx], train.table[donor[moved]][:, ctx])
    assert np.array_equal(swapped.table[:, locus], train.table[:, locus])
    assert np.array_equal(swapped.profile[moved], train.profile[donor[moved]])
    kept = donor < 0
    assert np.array_equal(swapped.table[kept], train.table[kept])


@pytest.mark.parametrize("name", ["epinet_swap", "checkpoint18", "epinet_irm"])
def test_torch_models_are_deterministic(name, split):
    train, val, test = split
    a = make_model(name, FAST, seed=3).fit(train, val).predict(test)
    b = make_model(name, FAST, seed=3).fit(train, val).predict(test)
    c = make_model(name, FAST, seed=4).fit(train, val).predict(test)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_resume_after_crash_equals_uninterrupted_fit(split, tmp_path, monkeypatch):
    train, val, test = split
    params = FAST | {"epochs": 5, "patience": 5, "groupdro": 0.05, "context_swap": 0.5, "dann": 0.3}
    whole = make_model("epinet", params, seed=1).fit(train, val)
    checkpoint = tmp_path / "fit.pt"
    save = TorchModel.save

    def save_then_crash(self, opt, state, key):
        save(self, opt, state, key)
        if state["epoch"] == 2:
            raise RuntimeError("killed")

    monkeypatch.setattr(TorchModel, "save", save_then_crash)
    with pytest.raises(RuntimeError, match="killed"):
        make_model("epinet", params, seed=1, checkpoint=checkpoint).fit(train, val)
    monkeypatch.setattr(TorchModel, "save", save)
    resumed = make_model("epinet", params, seed=1, checkpoint=checkpoint).fit(train, val)
    assert resumed.epochs_run == whole.epochs_run == 5
    assert np.array_equal(resumed.predict(test), whole.predict(test))
    # a checkpoint of other params is not resumed
    other = make_model("epinet", params | {"lr": 0.01}, seed=1, checkpoint=checkpoint).fit(train, val)
    assert other.epochs_run == 5


def test_energy_interaction_term_ignores_cell_context(split):
    train, val, test = split
    model = make_model("epinet_energy", FAST, seed=0).fit(train, val)
    batch = model.tensors(test)
    shuffled = dict(batch, context=batch["context"].flip(0), profile=batch["profile"].flip(0))
    model.net.eval()
    with torch.no_grad():
        a, b = model.net(batch), model.net(shuffled)
    assert torch.equal(a["u"], b["u"])  # U_I: sequence, distance, topology only
    assert not torch.equal(a["r"], b["r"])
    assert torch.allclose(a["logit"], a["u"] - a["r"])
    z = torch.randn(50, 4)
    assert orthogonality_loss(z, z).item() > orthogonality_loss(z, torch.randn(50, 4)).item()


def test_conditional_discriminator_reads_each_rows_class_and_reverses_its_gradient():
    torch.manual_seed(0)
    disc = inv.ConditionalDiscriminator(6, 3)
    z = torch.randn(8, 6, requires_grad=True)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    env = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    logits = disc(z, y, 1.0)
    both = disc.net(z).view(8, 2, 3)
    assert logits.shape == (8, 3)
    assert torch.equal(logits[y == 0], both[y == 0, 0]) and torch.equal(logits[y == 1], both[y == 1, 1])
    grads = []
    for coefficient in (0.0, 2.0):
        z.grad = None
        out = disc.net(z).view(8, 2, 3)[torch.arange(8), y] if coefficient == 0 else disc(z, y, coefficient)
        inv.class_balanced_env_loss(out, env, y).backward()
        grads.append(z.grad.clone())
    assert torch.allclose(grads[1], -2.0 * grads[0])
    # class balance: one positive among many negatives weighs as much as all the negatives together
    losses = torch.nn.functional.cross_entropy(logits.detach(), env, reduction="none")
    expected = (losses[y == 0].mean() + losses[y == 1].mean()) / 2
    assert torch.isclose(inv.class_balanced_env_loss(logits.detach(), env, y), expected)


def test_conditional_mean_penalty_sees_a_class_scored_differently_per_line():
    y = torch.tensor([1, 0, 1, 0, 1, 0])
    env = torch.tensor([0, 0, 1, 1, 2, 2])
    same = torch.tensor([2.0, -1.0, 2.0, -1.0, 2.0, -1.0])
    assert inv.conditional_mean_penalty(same, y, env, 3).item() == 0.0
    # the marginal mean can differ between lines (different positive rates) without any penalty ...
    y2, env2 = torch.tensor([1, 1, 0, 1, 0, 0]), torch.tensor([0, 0, 0, 1, 1, 1])
    scores2 = torch.where(y2 == 1, 2.0, -1.0)
    assert inv.conditional_mean_penalty(scores2, y2, env2, 2).item() == 0.0
    # ... but positives of line 2 scored higher than positives elsewhere are: (3 - 2.333)^2 etc.
    shifted = same.clone()
    shifted[4] = 3.0
    expected = ((2 - 7 / 3) ** 2 * 2 + (3 - 7 / 3) ** 2) / 3 / 2  # class 1 term, averaged with class 0's zero
    assert inv.conditional_mean_penalty(shifted, y, env, 3).item() == pytest.approx(expected)
    # adding the same constant to every score changes nothing; one line alone in a class gives no term
    assert inv.conditional_mean_penalty(shifted + 5, y, env, 3).item() == pytest.approx(expected)
    assert inv.conditional_mean_penalty(same[:2], y[:2], env[:2], 3).item() == 0.0


def test_penalties():
    risks, present = inv.per_env_losses(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0, 0, 1]), 3)
    assert torch.equal(risks, torch.tensor([2.0, 2.0, 0.0])) and present.tolist() == [True, True, False]
    assert inv.vrex_penalty(risks, present).item() == 0.0
    w = inv.groupdro_update(torch.full((3,), 1 / 3), torch.tensor([1.0, 2.0, 5.0]), present, 0.5)
    assert w[1] > w[0] and torch.isclose(w.sum(), torch.tensor(1.0))
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    env = torch.tensor([0, 0, 1, 1])
    good = inv.irm_penalty(torch.tensor([20.0, -20.0, 20.0, -20.0]), y, env, 2, None)
    bad = inv.irm_penalty(torch.tensor([0.5, -0.5, -0.5, 0.5]), y, env, 2, None)
    assert good.item() < 1e-6 < bad.item()


def test_abc_normalizes_activity_by_contact_per_gene(split):
    test = split[2]
    model = make_model("abc", {}, 0).fit(test, test)
    assert model.marks == ["H3K27ac", "DNase"]
    scores = model.predict(test)
    sums = pd.Series(scores).groupby(test.frame.gene.to_numpy()).sum()
    assert np.allclose(sums, 1.0)
    near = test.subset(np.array([0, 1]))
    near.table[:] = near.table[0]
    near.frame.loc[:, "distance"] = [10_000, 20_000]
    assert near.frame.gene.nunique() == 1
    s = model.predict(near)
    assert s[0] / s[1] == pytest.approx(2**0.87)
    with pytest.raises(ValueError, match="activity marks"):
        make_model("abc", {"activity_marks": ["H3K4me1"]}, 0).fit(test, test)


def test_propensity_detects_shared_loci_and_only_those(split, lines):
    train, val, test = split
    model = make_model("propensity", {}, 0).fit(train, val)
    elsewhere = test.subset(np.arange(len(test)))
    elsewhere.frame["chrom"] = "chr9"  # same coordinates on another chromosome: no locus in common
    assert np.allclose(model.predict(elsewhere), train.y.mean())


def test_exclude_columns_ablates_feature_groups(split):
    train = split[0]
    groups = column_groups(train.columns)
    assert groups["topology"] == ["same_tad", "tad_boundaries_crossed"]
    assert groups["H2AZ"] == ["H2AZ_enhancer", "H2AZ_promoter", "H2AZ_window"]
    no_h2az = train.without(["H2AZ", "topology", "sequence"])
    assert not any(c.startswith("H2AZ") or c in groups["topology"] for c in no_h2az.columns)
    assert no_h2az.profile.shape[1] == 2 and no_h2az.seq is None and no_h2az.marks == ["H3K27ac", "DNase"]
    assert np.array_equal(no_h2az.table, train.select(no_h2az.columns))
    gbm = make_model("gbm_notopo", {}, 0).fit(train, split[1])
    assert gbm.clf.n_features_in_ == len(train.columns) - 2
    with pytest.raises(KeyError, match="exclude_columns"):
        train.without(["nonsense"])


def test_cpu_models_do_not_autocast():
    model = make_model("epinet", {}, 0)
    assert model.amp is False and torch.device(model.device).type == "cpu"
    assert make_model("epinet", {}, 0, device="cuda:0").amp is True


def test_ensemble_is_the_mean_of_differently_seeded_members(split, tmp_path):
    from epiflow.models.base import ENSEMBLE_SEED_STEP, Ensemble

    train, val, test = split
    plain = make_model("epinet_small", FAST, seed=5)
    assert not isinstance(make_model("epinet_small", FAST | {"ensemble": 1}, seed=5), Ensemble)
    checkpoint = tmp_path / "fit.pt"
    three = make_model("epinet_small", FAST | {"ensemble": 3}, seed=5, checkpoint=checkpoint).fit(train, val)
    assert isinstance(three, Ensemble) and three.uses_gpu and three.params["ensemble"] == 3
    members = [make_model("epinet_small", FAST, seed=5 + j * ENSEMBLE_SEED_STEP).fit(train, val) for j in range(3)]
    each = [m.predict(test) for m in members]
    assert np.array_equal(each[0], plain.fit(train, val).predict(test))  # member 0 is the plain model
    assert not np.array_equal(each[0], each[1])  # the members differ by their seed
    assert np.allclose(three.predict(test), np.mean(each, axis=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.pt", "fit.pt.m1", "fit.pt.m2"]  # one per member
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="ensemble must be a whole number"):
            make_model("epinet_small", {"ensemble": bad}, seed=0)


def test_ensemble_resumes_each_member_after_a_kill(split, tmp_path, monkeypatch):
    from epiflow.models.base import ENSEMBLE_SEED_STEP

    train, val, test = split
    params = FAST | {"epochs": 4, "patience": 4, "ensemble": 2}
    whole = make_model("epinet_small", params, seed=1).fit(train, val)
    save = TorchModel.save

    def save_then_crash(self, opt, state, key):  # the second member dies after its second epoch
        save(self, opt, state, key)
        if self.seed == 1 + ENSEMBLE_SEED_STEP and state["epoch"] == 2:
            raise RuntimeError("killed")

    monkeypatch.setattr(TorchModel, "save", save_then_crash)
    with pytest.raises(RuntimeError, match="killed"):
        make_model("epinet_small", params, seed=1, checkpoint=tmp_path / "fit.pt").fit(train, val)
    saved_epochs = []

    def save_and_count(self, opt, state, key):
        saved_epochs.append((self.seed, state["epoch"]))
        save(self, opt, state, key)

    monkeypatch.setattr(TorchModel, "save", save_and_count)
    resumed = make_model("epinet_small", params, seed=1, checkpoint=tmp_path / "fit.pt").fit(train, val)
    # the finished first member is not trained again; the second goes on from its third epoch
    assert [seed for seed, _ in saved_epochs] == [1 + ENSEMBLE_SEED_STEP] * (whole.members[1].epochs_run - 2)
    assert [m.epochs_run for m in resumed.members] == [m.epochs_run for m in whole.members]
    assert np.array_equal(resumed.predict(test), whole.predict(test))


def test_gbm_line_balance_gives_every_training_line_the_same_weight():
    """With uninformative features a gbm predicts its training rows' (weighted) positive rate: the pair-weighted rate
    of a big low-rate line and a small high-rate line without line_balance, the mean of the two lines' rates with it."""
    from epiflow.metrics import line_weights

    rng = np.random.default_rng(3)
    n_a, n_b = 4000, 1000
    frame = pd.DataFrame(
        {
            "cell_line": ["big"] * n_a + ["small"] * n_b,
            "label": np.r_[rng.random(n_a) < 0.1, rng.random(n_b) < 0.4].astype(int),
            "distance": rng.integers(5_000, 100_000, n_a + n_b),
        }
    )
    weights = line_weights(frame["cell_line"])
    assert weights.mean() == pytest.approx(1.0)
    assert weights[:n_a].sum() == pytest.approx(weights[n_a:].sum())
    data = PairData(frame, rng.standard_normal((n_a + n_b, 2)).astype(np.float32), ["H3K27ac_enhancer", "log_distance"])
    rates = frame.groupby("cell_line").label.mean()
    fitted = {}
    for balance in (False, True):
        model = make_model("gbm", {"max_iter": 20, "line_balance": balance}, seed=0).fit(data, data)
        fitted[balance] = float(model.predict(data).mean())
    assert fitted[False] == pytest.approx(frame.label.mean(), abs=0.01)
    assert fitted[True] == pytest.approx(rates.mean(), abs=0.01)
