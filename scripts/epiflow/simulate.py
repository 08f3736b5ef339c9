"""The embedded demo: a small simulated genome whose EP interactions carry two planted kinds of signal.

Invariant mechanism (holds in every cell line):
    loop propensity = log enhancer activity + log promoter activity + log contact + motif pairing,
    contact = (distance / 10 kb) ** -decay, multiplied by `boundary_insulation` per TAD boundary crossed,
    motif pairing = `motif_pairing` when the enhancer's and the promoter's planted motifs are partners.
Cell-line-specific spurious cue (the seed reflection's failure mode):
    the `spurious.mark` signal at an enhancer tracks whether that enhancer loops, with a strength that differs per
    cell line (`spurious.strength`, -1..1); in a line with strength 0 the same amount of signal sits on random
    enhancers, with a negative strength on enhancers that do not loop.
    `batch_scale` multiplies every track of a line (another lab's pipeline), a cue that normalization removes.
Everything is drawn from one numpy Generator seeded by `seed`, so the demo is identical on every machine.
Unlabelled lines (`unlabelled_lines`: tracks for the workflow; loops, truth.tsv.gz and an in-silico CRISPRi screen
kept aside for tests, see simulate_screen.py) are drawn last, each from its own Generator, so they change nothing else.
"""

from __future__ import annotations

import gzip
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyBigWig
import pysam

from epiflow.simulate_screen import screen_to_tsv, simulate_screen

log = logging.getLogger(__name__)

BASES = np.array(list("ACGT"))
# Partner motifs: an enhancer carrying ENHANCER_MOTIFS[k] pairs with a promoter carrying PROMOTER_MOTIFS[k].
ENHANCER_MOTIFS = ["TGACTCAGCA", "CACGTGACCG", "GGAATTTCCA", "TTGCGCAAGT"]
PROMOTER_MOTIFS = ["CCAATCAGGC", "GCCCCGCCCC", "TATAAAAGGC", "CGGAAGTGAC"]
BIN = 100  # bp resolution of simulated signal tracks


@dataclass
class Genome:
    """Simulated loci: chromosome sizes, TADs, genes and enhancers (positions shared by all cell lines)."""

    sizes: dict[str, int]
    boundaries: dict[str, np.ndarray]
    genes: pd.DataFrame  # chrom, tss, strand, gene, motif
    enhancers: pd.DataFrame  # chrom, start, end, motif


def simulate_genome(cfg: dict, rng: np.random.Generator) -> Genome:
    """Draw chromosomes, TAD boundaries, genes (one TSS each) and enhancer loci."""
    sizes, boundaries, genes, enhancers = {}, {}, [], []
    length = int(cfg["chrom_length"])
    for i in range(int(cfg["chromosomes"])):
        chrom = f"chr{i + 1}"
        sizes[chrom] = length
        tad = rng.uniform(0.5, 1.5, size=length // int(cfg["tad_mean_size"]) + 2) * cfg["tad_mean_size"]
        edges = np.cumsum(tad).astype(np.int64)
        boundaries[chrom] = edges[edges < length - 20_000]
        n_genes = int(cfg["genes_per_mb"] * length / 1e6)
        tss = np.sort(rng.choice(np.arange(20_000, length - 20_000, 1_000), n_genes, replace=False))
        genes.append(
            pd.DataFrame(
                {
                    "chrom": chrom,
                    "tss": tss,
                    "strand": rng.choice(["+", "-"], n_genes),
                    "gene": [f"SIM{i + 1}G{j:04d}" for j in range(n_genes)],
                    "motif": rng.integers(0, len(PROMOTER_MOTIFS), n_genes),
                }
            )
        )
        n_enh = int(cfg["enhancers_per_mb"] * length / 1e6)
        centers = rng.integers(10_000, length - 10_000, n_enh * 2)
        far = np.min(np.abs(centers[:, None] - tss[None, :]), axis=1) > 5_000
        centers = np.sort(np.unique(centers[far]))[:n_enh]
        half = rng.integers(250, 1_000, len(centers))
        enhancers.append(
            pd.DataFrame(
                {
                    "chrom": chrom,
                    "start": centers - half,
                    "end": centers + half,
                    "motif": rng.integers(0, len(ENHANCER_MOTIFS), len(centers)),
                }
            )
        )
    return Genome(sizes, boundaries, pd.concat(genes, ignore_index=True), pd.concat(enhancers, ignore_index=True))


def write_fasta(genome: Genome, rng: np.random.Generator, path: Path) -> None:
    """Write a random genome with the planted motifs as bgzipped FASTA with .fai and .gzi indexes (pysam)."""
    plain = Path(str(path).removesuffix(".gz"))
    with open(plain, "w") as out:
        for chrom, size in genome.sizes.items():
            seq = BASES[rng.choice(4, size=size, p=[0.29, 0.21, 0.21, 0.29])]
            for row in genome.enhancers[genome.enhancers.chrom == chrom].itertuples():
                mid = (row.start + row.end) // 2
                seq[mid - 5 : mid + 5] = list(ENHANCER_MOTIFS[row.motif])
            for row in genome.genes[genome.genes.chrom == chrom].itertuples():
                seq[row.tss - 60 : row.tss - 50] = list(PROMOTER_MOTIFS[row.motif])
            text = "".join(seq)
            out.write(f">{chrom}\n")
            out.writelines(text[i : i + 60] + "\n" for i in range(0, size, 60))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.faidx(str(path))


def write_gzip_text(path: Path, lines) -> None:
    """Write lines of text as gzip with a zero time stamp, so the same content gives the same bytes on every run."""
    with gzip.GzipFile(path, "wb", mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8") as out:
        out.writelines(lines)


def write_annotation(genome: Genome, path: Path) -> None:
    """Write a GTF with one gene and one transcript per simulated gene."""
    lines = []
    for g in genome.genes.itertuples():
        start, end = (g.tss, g.tss + 30_000) if g.strand == "+" else (g.tss - 30_000 + 1, g.tss + 1)
        attrs = f'gene_id "{g.gene}"; gene_name "{g.gene}"; gene_type "protein_coding";'
        for feature in ("gene", "transcript"):
            # GTF is 1-based inclusive: a 0-based TSS t is base t + 1.
            lines.append(f"{g.chrom}\tepiflow\t{feature}\t{start + 1}\t{end}\t.\t{g.strand}\t.\t{attrs}\n")
    write_gzip_text(path, lines)


def boundaries_between(genome: Genome, chrom: str, lo: np.ndarray, hi: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Count the TAD boundaries (those flagged in `keep`) strictly between lo and hi, vectorized."""
    edges = genome.boundaries[chrom][keep]
    return np.searchsorted(edges, hi) - np.searchsorted(edges, lo, side="right")


def cell_activity(n: int, shared: np.ndarray, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Activity of loci in one cell line: a shared log-normal component, a cell-specific one, and on/off state."""
    log_act = shared + cfg["cell_specific_sd"] * rng.standard_normal(n)
    active = rng.random(n) < cfg["active_fraction"]
    return np.where(active, np.exp(log_act), 0.0)


def simulate_loops(genome: Genome, cell: str, rng: np.random.Generator, cfg: dict, shared: dict) -> dict:
    """Decide the looping EP pairs of one cell line from the invariant mechanism.

    Returns enhancer and promoter activities, the kept TAD boundaries, every considered pair (both ends active,
    distance in range: indexes into genome.enhancers / genome.genes, distance, noise-free `mechanism`, `propensity`
    = mechanism + noise, `label`), the propensity cut and the looping pairs (label 1).
    """
    enh, genes = genome.enhancers, genome.genes
    a_enh = cell_activity(len(enh), shared["enhancer"], rng, cfg)
    a_prom = cell_activity(len(genes), shared["promoter"], rng, cfg)
    keep = {c: rng.random(len(b)) > cfg["boundary_dropout"] for c, b in genome.boundaries.items()}
    looping = []
    for chrom in genome.sizes:
        ei = np.flatnonzero((enh.chrom == chrom).to_numpy() & (a_enh > 0))
        gi = np.flatnonzero((genes.chrom == chrom).to_numpy() & (a_prom > 0))
        e_mid = ((enh.start.to_numpy() + enh.end.to_numpy()) // 2)[ei]
        tss = genes.tss.to_numpy()[gi]
        E, G = np.meshgrid(np.arange(len(ei)), np.arange(len(gi)), indexing="ij")
        dist = np.abs(e_mid[E] - tss[G])
        ok = (dist >= cfg["min_distance"]) & (dist <= cfg["max_distance"])
        E, G, dist = E[ok], G[ok], dist[ok]
        crossed = boundaries_between(
            genome, chrom, np.minimum(e_mid[E], tss[G]), np.maximum(e_mid[E], tss[G]), keep[chrom]
        )
        pairing = enh.motif.to_numpy()[ei[E]] == genes.motif.to_numpy()[gi[G]]
        mechanism = (
            np.log(a_enh[ei[E]])
            + np.log(a_prom[gi[G]])
            - cfg["contact_decay"] * np.log(dist / 10_000)
            + crossed * np.log(cfg["boundary_insulation"])
            + cfg["motif_pairing"] * pairing
        )
        propensity = mechanism + cfg["noise_sd"] * rng.standard_normal(len(E))
        looping.append(
            pd.DataFrame(
                {"enhancer": ei[E], "gene": gi[G], "distance": dist, "mechanism": mechanism, "propensity": propensity}
            )
        )
    pairs = pd.concat(looping, ignore_index=True)
    cut = np.quantile(pairs.propensity, 1 - cfg["positive_rate"][cell])
    pairs["label"] = (pairs.propensity >= cut).astype(int)
    state = {"enhancer": a_enh, "promoter": a_prom, "keep": keep, "pairs": pairs, "cut": float(cut)}
    return state | {"loops": pairs[pairs.label == 1]}


def paint(values: np.ndarray, centers: np.ndarray, heights: np.ndarray, half_width: int) -> None:
    """Add peaks of the given heights (bp centers) into a per-bin signal array, in place."""
    bins = centers // BIN
    width = max(half_width // BIN, 1)
    for offset in range(-width, width + 1):
        idx = np.clip(bins + offset, 0, len(values) - 1)
        np.add.at(values, idx, heights * (1 - abs(offset) / (width + 1)))


def cell_tracks(genome: Genome, cell: str, state: dict, rng: np.random.Generator, cfg: dict) -> dict:
    """Per-mark, per-chromosome signal arrays (100 bp bins) of one cell line, with the planted cue and batch scale."""
    enh, genes = genome.enhancers, genome.genes
    e_mid = ((enh.start + enh.end) // 2).to_numpy()
    looped = np.zeros(len(enh), bool)
    looped[state["loops"].enhancer.to_numpy()] = True
    strength = cfg["spurious"]["strength"][cell]
    # The cue: looping enhancers get extra signal in proportion to `strength`; the rest of the same budget lands on
    # random enhancers, so the mark's marginal level is the same in every line while its link to the label is not.
    # A negative strength reverses the link: the cue then sits on as many *non*-looping enhancers (the cue marks
    # the opposite in that line, the setting Colored-MNIST-style invariance benchmarks are built on).
    cue = np.where(looped, max(strength, 0.0), 0.0)
    decoys = rng.permutation(looped) * (1 - abs(strength))
    if strength < 0:
        quiet = np.flatnonzero(~looped)
        cue[rng.choice(quiet, min(int(looped.sum()), len(quiet)), replace=False)] = -strength
    cue_height = cfg["spurious"]["height"] * (cue + decoys)
    scale = cfg["batch_scale"].get(cell, 1.0)
    tracks = {}
    for mark in cfg["marks"]:
        per_chrom = {}
        for chrom, size in genome.sizes.items():
            values = rng.exponential(cfg["background"], size // BIN).astype(np.float64)
            em, gm = (enh.chrom == chrom).to_numpy(), (genes.chrom == chrom).to_numpy()
            a_e, a_p = state["enhancer"][em], state["promoter"][gm]
            noise_e = rng.lognormal(0, 0.3, em.sum())
            if mark in ("H3K27ac", "DNase"):
                paint(values, e_mid[em], 4 * np.sqrt(a_e) * noise_e, 500)
                paint(values, genes.tss.to_numpy()[gm], 3 * np.sqrt(a_p), 500)
            elif mark == "H3K4me3":
                paint(values, genes.tss.to_numpy()[gm], 6 * np.sqrt(a_p), 800)
                paint(values, e_mid[em], 0.5 * np.sqrt(a_e), 300)
            elif mark == "CTCF":
                kept = genome.boundaries[chrom][state["keep"][chrom]]
                paint(values, kept, np.full(len(kept), 8.0), 300)
                sites = rng.integers(0, size, len(kept) * 2)
                paint(values, sites, np.full(len(sites), 3.0), 300)
            if mark == cfg["spurious"]["mark"]:
                paint(values, e_mid[em], cue_height[em] * noise_e, 500)
            elif mark not in ("H3K27ac", "DNase", "H3K4me3", "CTCF"):
                paint(values, e_mid[em], np.sqrt(a_e) * noise_e, 500)
            per_chrom[chrom] = (values * scale).astype(np.float32)
        tracks[mark] = per_chrom
    return tracks


def write_bigwig(per_chrom: dict, sizes: dict, path: Path) -> None:
    """Write per-bin arrays as a bigWig (fixed 100 bp steps)."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, values in per_chrom.items():
        bw.addEntries(chrom, 0, values=values.astype(np.float64), span=BIN, step=BIN)
    bw.close()


def write_narrowpeak(per_chrom: dict, path: Path, min_signal: float) -> None:
    """Call peaks as runs of bins above `min_signal` and write them as narrowPeak (signalValue = run maximum)."""
    rows = []
    for chrom, values in per_chrom.items():
        above = np.concatenate([[False], values > min_signal, [False]])
        starts = np.flatnonzero(~above[:-1] & above[1:])
        ends = np.flatnonzero(above[:-1] & ~above[1:])
        for k, (s, e) in enumerate(zip(starts, ends, strict=False)):
            peak, summit = values[s:e], int(np.argmax(values[s:e])) * BIN
            rows.append(f"{chrom}\t{s * BIN}\t{e * BIN}\tpeak{k}\t0\t.\t{peak.max():.4f}\t-1\t-1\t{summit}\n")
    write_gzip_text(path, rows)


def write_loops(genome: Genome, loops: pd.DataFrame, path: Path, anchor: int) -> None:
    """Write the looping pairs as BEDPE with `anchor`-sized bins around the enhancer midpoint and the TSS."""
    enh, genes = genome.enhancers.iloc[loops.enhancer], genome.genes.iloc[loops.gene]
    e_mid = ((enh.start + enh.end) // 2).to_numpy() // anchor * anchor
    tss = genes.tss.to_numpy() // anchor * anchor
    a, b = np.minimum(e_mid, tss), np.maximum(e_mid, tss)
    frame = pd.DataFrame({"chrom1": enh.chrom.to_numpy(), "start1": a, "end1": a + anchor})
    frame = frame.assign(chrom2=frame.chrom1, start2=b, end2=b + anchor).drop_duplicates()
    frame.sort_values(["chrom1", "start1", "start2"]).to_csv(path, sep="\t", header=False, index=False)


def write_tads(genome: Genome, keep: dict, path: Path) -> None:
    """Write a cell line's TADs (domains between its kept boundaries) as BED."""
    rows = []
    for chrom, size in genome.sizes.items():
        edges = np.concatenate([[0], genome.boundaries[chrom][keep[chrom]], [size]])
        rows += [f"{chrom}\t{s}\t{e}\n" for s, e in zip(edges[:-1], edges[1:], strict=False)]
    write_gzip_text(path, rows)


def truth_table(genome: Genome, state: dict, cfg: dict) -> pd.DataFrame:
    """Every enhancer-gene pair a line's simulation considered, with its label and the planted propensity.

    propensity: the noise-free mechanism (what a perfect model of the invariant mechanism knows); probability: the
    chance that mechanism + noise clears the line's cut, Phi((propensity - cut) / noise_sd).
    """
    pairs = state["pairs"]
    enh, genes = genome.enhancers.iloc[pairs.enhancer], genome.genes.iloc[pairs.gene]
    z = (pairs.mechanism.to_numpy() - state["cut"]) / max(float(cfg["noise_sd"]), 1e-9)
    frame = pd.DataFrame(
        {
            "chrom": enh.chrom.to_numpy(),
            "enhancer_start": enh.start.to_numpy(),
            "enhancer_end": enh.end.to_numpy(),
            "gene": genes.gene.to_numpy(),
            "tss": genes.tss.to_numpy(),
            "distance": pairs.distance.to_numpy(),
            "label": pairs.label.to_numpy(),
            "propensity": pairs.mechanism.to_numpy(),
            "probability": np.vectorize(NormalDist().cdf, otypes=[float])(z),
        }
    )
    return frame.sort_values(["chrom", "enhancer_start", "tss"], ignore_index=True)


def write_cell_line(genome: Genome, cell: str, rng: np.random.Generator, cfg: dict, shared: dict, cell_dir: Path):
    """Simulate one cell line and write its loops, TADs and tracks under cell_dir; returns its state and tracks."""
    cell_dir.mkdir(exist_ok=True)
    state = simulate_loops(genome, cell, rng, cfg, shared)
    log.info("%s: %d looping pairs", cell, len(state["loops"]))
    write_loops(genome, state["loops"], cell_dir / "loops.bedpe", int(cfg["loop_anchor"]))
    write_tads(genome, state["keep"], cell_dir / "tads.bed.gz")
    tracks = cell_tracks(genome, cell, state, rng, cfg)
    for mark, per_chrom in tracks.items():
        if mark in cfg["peak_marks"]:
            write_narrowpeak(per_chrom, cell_dir / f"{mark}.narrowPeak.gz", peak_cutoff(cfg, cell))
        else:
            write_bigwig(per_chrom, genome.sizes, cell_dir / f"{mark}.bw")
    return state, tracks


def peak_cutoff(cfg: dict, cell: str) -> float:
    """The signal a bin must exceed to be in a peak of a line (the threshold follows the line's batch scale)."""
    return cfg["peak_threshold"] * cfg["batch_scale"].get(cell, 1.0)


def write_unlabelled_line(genome: Genome, cell: str, rng: np.random.Generator, cfg: dict, shared: dict, outdir: Path):
    """A line given to the workflow by its tracks only: also write its hidden truth and its in-silico CRISPRi screen."""
    cell_dir = outdir / cell
    state, tracks = write_cell_line(genome, cell, rng, cfg, shared, cell_dir)
    truth = truth_table(genome, state, cfg)
    write_gzip_text(cell_dir / "truth.tsv.gz", [truth.to_csv(sep="\t", index=False, float_format="%.6g")])
    if cfg.get("crispr_screen"):
        reference = f"epiflow simulation, seed {cfg['seed']}"
        cutoff = peak_cutoff(cfg, cell)
        screen = simulate_screen(truth, tracks, rng, cfg["crispr_screen"], cell, cutoff, reference, BIN)
        log.info("%s: screen of %d pairs, %d regulated", cell, len(screen), screen.Regulated.sum())
        write_gzip_text(cell_dir / "crispri.tsv.gz", [screen_to_tsv(screen)])


def simulate_demo(cfg: dict, outdir: Path) -> None:
    """Write the whole demo under `outdir`: genome, annotation, and per cell line tracks, peaks, loops and TADs.

    Unlabelled lines (`unlabelled_lines`) come last, each from its own stream seeded [seed, k] (k counting on from
    the labelled lines), so adding one leaves every other output byte-identical.
    """
    rng = np.random.default_rng(int(cfg["seed"]))
    outdir.mkdir(parents=True, exist_ok=True)
    genome = simulate_genome(cfg, rng)
    write_fasta(genome, rng, outdir / "genome.fa.gz")
    write_annotation(genome, outdir / "annotation.gtf.gz")
    shared = {
        "enhancer": cfg["shared_sd"] * rng.standard_normal(len(genome.enhancers)),
        "promoter": cfg["shared_sd"] * rng.standard_normal(len(genome.genes)),
    }
    for cell in cfg["cell_lines"]:
        write_cell_line(genome, cell, rng, cfg, shared, outdir / cell)
    for k, cell in enumerate(cfg.get("unlabelled_lines") or [], start=len(cfg["cell_lines"]) + 1):
        write_unlabelled_line(genome, cell, np.random.default_rng([int(cfg["seed"]), k]), cfg, shared, outdir)
