"""Feature engine, normalization, topology priors and sequence codes against brute-force computations."""

import inspect
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pysam
import pytest

from epiflow import features, normalize, topology, track_bins
from epiflow.errors import InputError, LeakageError

DATA = Path(__file__).parents[1].parent / "shared" / "data"
SIZES = {"chr1": 10_037, "chr2": 5_003, "chr3": 4_000}  # chr3 is absent from every test track


def _random_intervals(rng, size: int) -> list[tuple[int, int, float]]:
    """Sorted, non-overlapping intervals with gaps (missing data) and random values."""
    cuts = np.unique(rng.integers(0, size + 1, size=size // 40))
    out = []
    for start, end in zip(cuts[:-1], cuts[1:], strict=False):
        if rng.random() < 0.6:
            out.append((int(start), int(end), float(np.float32(rng.gamma(1.0, 3.0)))))
    return out


def _write_bigwig(path: Path, sizes: dict, intervals: dict) -> Path:
    """bigWig declaring ``sizes`` with ``intervals[chrom]`` = [(start, end, value), ...]."""
    with pyBigWig.open(str(path), "w") as bw:
        bw.addHeader(list(sizes.items()))
        for chrom, ivs in intervals.items():
            if ivs:
                s, e, v = zip(*ivs, strict=False)
                bw.addEntries([chrom] * len(s), list(s), ends=list(e), values=list(v))
    return path


def _dense(intervals: dict, sizes: dict) -> dict[str, np.ndarray]:
    """Per-base signal (missing = 0) painted in plain Python: the brute-force reference."""
    out = {chrom: np.zeros(size) for chrom, size in sizes.items()}
    for chrom, ivs in intervals.items():
        for s, e, v in ivs:
            out[chrom][s:e] = v
    return out


def _stepped(dense: np.ndarray, resolution: int) -> np.ndarray:
    """Per-base signal replaced by its bin mean (the engine's piecewise-constant model)."""
    starts = np.arange(0, dense.size, resolution)
    widths = np.diff(np.append(starts, dense.size))
    return np.repeat(np.add.reduceat(dense, starts) / widths, widths)


def _brute_mean(step: np.ndarray, start, end) -> float:
    s, e = max(0, int(np.floor(start))), min(step.size, int(np.ceil(end)))
    if e <= s:
        return 0.0
    # Fractional bp ends (profile edges): weight the end bases by their overlap.
    weights = np.ones(e - s)
    weights[0] -= max(0.0, start - s)
    weights[-1] -= max(0.0, e - end)
    return float((step[s:e] * weights).sum() / max(weights.sum(), 1e-12)) if end > start else 0.0


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    """Two random marks on chr1 and chr2 (chr3 missing) and their dense per-base reference."""
    tmp = tmp_path_factory.mktemp("tracks")
    rng = np.random.default_rng(7)
    paths, dense = {}, {}
    for mark in ("H3K27ac", "CTCF"):
        ivs = {chrom: _random_intervals(rng, SIZES[chrom]) for chrom in ("chr1", "chr2")}
        header = {chrom: SIZES[chrom] for chrom in ivs}  # chr3 not even declared
        paths[mark] = str(_write_bigwig(tmp / f"{mark}.bw", header, ivs))
        dense[mark] = _dense(ivs, SIZES)
    return paths, dense


def _pairs(rng, n: int = 60) -> pd.DataFrame:
    """Random pairs on chr1/chr2 plus hand-made edge cases: chromosome ends, overlap, enhancer downstream."""
    rows = []
    for _ in range(n):
        chrom = rng.choice(["chr1", "chr2"])
        size = SIZES[chrom]
        es = int(rng.integers(0, size - 1))
        ee = int(min(size, es + rng.integers(1, 400)))
        ps = int(rng.integers(0, size - 1))
        pe = int(min(size, ps + rng.integers(1, 300)))
        rows.append((chrom, es, ee, ps, pe))
    rows += [
        ("chr1", 10_000, 10_037, 0, 50),  # enhancer at the chromosome end, promoter at the start
        ("chr2", 100, 300, 250, 400),  # overlapping: zero-length window
        ("chr2", 4_800, 5_003, 10, 20),  # enhancer downstream (reversed window)
        ("chr1", 500, 500, 700, 900),  # empty enhancer
    ]
    frame = pd.DataFrame(rows, columns=["chrom", "enhancer_start", "enhancer_end", "promoter_start", "promoter_end"])
    frame["tss"] = (frame.promoter_start + frame.promoter_end) // 2
    frame["distance"] = (((frame.enhancer_start + frame.enhancer_end) // 2) - frame.tss).abs()
    frame.index = [f"p{i}" for i in range(len(frame))]
    return frame


def _brute_table(pairs, dense, resolution):
    out = {}
    for mark, per_chrom in dense.items():
        for region in ("enhancer", "promoter", "window"):
            out[f"{mark}_{region}"] = []
        for row in pairs.itertuples():
            step = _stepped(per_chrom[row.chrom], resolution)
            ws = min(row.enhancer_end, row.promoter_end)
            we = max(row.enhancer_start, row.promoter_start)
            out[f"{mark}_enhancer"].append(_brute_mean(step, row.enhancer_start, row.enhancer_end))
            out[f"{mark}_promoter"].append(_brute_mean(step, row.promoter_start, row.promoter_end))
            out[f"{mark}_window"].append(_brute_mean(step, ws, we) if we > ws else 0.0)
    return pd.DataFrame(out, index=pairs.index)


@pytest.fixture(params=["intervals", "values"])
def read_path(request, monkeypatch):
    """Run a test once painting bigWig intervals and once summing per-base values in small chunks."""
    monkeypatch.setattr(track_bins, "DENSE_FRACTION", 2.0 if request.param == "intervals" else -1.0)
    monkeypatch.setattr(track_bins, "CHUNK_BP", 1_000)
    return request.param


def test_load_track_bins_are_mean_coverage_with_missing_as_zero(tracks, read_path):
    paths, dense = tracks
    for resolution in (1, 100, 333):
        bins = track_bins.load_track(paths["CTCF"], "chr1", SIZES["chr1"], resolution)
        d = dense["CTCF"]["chr1"]
        expected = [d[i : i + resolution].mean() for i in range(0, d.size, resolution)]
        assert bins.dtype == np.float32 and bins.size == -(-SIZES["chr1"] // resolution)
        np.testing.assert_allclose(bins, expected, rtol=1e-6, atol=1e-7)


def test_load_track_missing_chromosome_is_zero_with_warning(tracks, caplog):
    with caplog.at_level(logging.WARNING):
        bins = track_bins.load_track(tracks[0]["CTCF"], "chr3", SIZES["chr3"], 100)
    assert bins.shape == (40,) and not bins.any()
    assert "chr3" in caplog.text


@pytest.mark.parametrize("resolution", [1, 7, 100])
def test_epw_features_equal_brute_force(tracks, resolution, read_path):
    paths, dense = tracks
    pairs = _pairs(np.random.default_rng(resolution))
    table = features.epw_features(pairs, paths, SIZES, resolution=resolution)
    expected = _brute_table(pairs, dense, resolution)
    assert list(table.columns) == list(expected.columns)
    assert table.index.equals(pairs.index)
    assert (table.dtypes == np.float32).all()
    np.testing.assert_allclose(table.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-6)
    assert table.loc["p61", "CTCF_window"] == 0  # overlapping enhancer and promoter
    assert table.loc["p62", "CTCF_window"] > 0  # reversed window still measured


def test_resolution_one_equals_pybigwig_exact_stats(tracks):
    paths, _ = tracks
    pairs = _pairs(np.random.default_rng(3), n=30)
    pairs = pairs[pairs.enhancer_end > pairs.enhancer_start]
    table = features.epw_features(pairs, paths, SIZES, resolution=1)
    with pyBigWig.open(paths["H3K27ac"]) as bw:
        for row in pairs.itertuples():
            total = bw.stats(row.chrom, row.enhancer_start, row.enhancer_end, type="sum", exact=True)[0] or 0.0
            mean = total / (row.enhancer_end - row.enhancer_start)
            assert table.loc[row.Index, "H3K27ac_enhancer"] == pytest.approx(mean, rel=1e-5, abs=1e-6)


def test_missing_track_chromosome_gives_zeros_and_one_warning(tracks, caplog):
    pairs = _pairs(np.random.default_rng(1), n=4)
    extra = pairs.iloc[:2].assign(chrom="chr3")
    extra.index = ["m0", "m1"]
    with caplog.at_level(logging.WARNING, logger="epiflow.features"):
        table, profile = features.compute_features(pd.concat([pairs, extra]), tracks[0], SIZES)
    assert not table.loc[["m0", "m1"]].drop(columns="log_distance").to_numpy().any()
    assert not profile[-2:].any()
    warnings = [r for r in caplog.records if "chr3" in r.getMessage()]
    assert len(warnings) == 2  # one per mark, not one per pair


def test_bad_pairs_raise_input_error(tracks):
    pairs = _pairs(np.random.default_rng(2), n=5)
    with pytest.raises(InputError, match="row 3: chromosome 'chrUn'"):
        features.epw_features(
            pairs.assign(chrom=["chr1", "chr1", "chrUn", "chr1", "chr1"] + ["chr1"] * 4), tracks[0], SIZES
        )
    flipped = pairs.copy()
    flipped.iloc[1, flipped.columns.get_loc("promoter_start")] = 6_000
    flipped.iloc[1, flipped.columns.get_loc("promoter_end")] = 5_000
    with pytest.raises(InputError, match=r"row 2: promoter start 6000 > end 5000"):
        features.epw_features(flipped, tracks[0], SIZES)


def test_compute_features_matches_separate_calls(tracks):
    paths, _ = tracks
    pairs = _pairs(np.random.default_rng(5))
    table, profile = features.compute_features(pairs, paths, SIZES, n_bins=16)
    np.testing.assert_array_equal(table.drop(columns="log_distance"), features.epw_features(pairs, paths, SIZES))
    np.testing.assert_array_equal(profile, features.context_profiles(pairs, paths, SIZES, n_bins=16))
    np.testing.assert_allclose(table["log_distance"], np.log10(pairs["distance"] + 1), rtol=1e-6)
    assert profile.shape == (len(pairs), 2, 16) and profile.dtype == np.float32


@pytest.mark.parametrize("normalization", ["none", "quantile"])
def test_features_by_chromosome_equal_the_whole_table(tracks, normalization):
    """The predict path's chunked features (normalizers fitted once, genome-wide) are the whole table's."""
    paths, _ = tracks
    pairs = _pairs(np.random.default_rng(11)).sample(frac=1, random_state=0)  # chromosomes interleaved
    options = {"resolution": 50, "profile_bins": 8, "flank_fraction": 0.25, "normalization": normalization}
    whole, whole_profile = features.compute_configured(pairs, paths, SIZES, options)
    seen = []
    for chrom, rows, table, profile in features.features_by_chromosome(pairs, paths, SIZES, options):
        assert (pairs.chrom.iloc[rows] == chrom).all()
        pd.testing.assert_frame_equal(table, whole.iloc[rows])
        np.testing.assert_array_equal(profile, whole_profile[rows])
        seen.extend(rows)
    assert sorted(seen) == list(range(len(pairs)))


def test_profiles_equal_brute_force(tracks):
    paths, dense = tracks
    pairs = _pairs(np.random.default_rng(9), n=20)
    n_bins, flank = 8, 0.25
    profile = features.context_profiles(pairs, paths, SIZES, n_bins=n_bins, flank_fraction=flank, resolution=50)
    for i, row in enumerate(pairs.itertuples()):
        lo = min(row.enhancer_start, row.promoter_start)
        hi = max(row.enhancer_end, row.promoter_end)
        edges = np.linspace(lo - flank * (hi - lo), hi + flank * (hi - lo), n_bins + 1)
        step = _stepped(dense["CTCF"][row.chrom], 50)
        expected = [_brute_mean(step, a, b) for a, b in zip(edges[:-1], edges[1:], strict=False)]
        if (row.enhancer_start + row.enhancer_end) / 2 > row.tss:
            expected = expected[::-1]
        np.testing.assert_allclose(profile[i, 1], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("enhancer_upstream", [True, False])
def test_profile_puts_enhancer_spike_in_first_bins(tmp_path, enhancer_upstream):
    sizes = {"chr1": 100_000}
    enhancer = (20_000, 20_500) if enhancer_upstream else (80_000, 80_500)
    promoter = (79_000, 81_000) if enhancer_upstream else (19_000, 21_000)
    spike = (enhancer[0], enhancer[1], 50.0)
    path = _write_bigwig(tmp_path / "spike.bw", sizes, {"chr1": [spike]})
    pairs = pd.DataFrame(
        [["chr1", *enhancer, *promoter, (promoter[0] + promoter[1]) // 2]],
        columns=["chrom", "enhancer_start", "enhancer_end", "promoter_start", "promoter_end", "tss"],
    )
    profile = features.context_profiles(pairs, {"H3K27ac": str(path)}, sizes, n_bins=32)[0, 0]
    assert profile.argmax() < 8
    assert profile[16:].max() == 0


def _monotone(method, values):
    norm = normalize.fit_normalizer(method, [values[: values.size // 2], values[values.size // 2 :]])
    probe = np.sort(np.concatenate([values, np.linspace(-1, values.max() + 1, 500)]))
    return norm, norm.transform(probe)


@pytest.mark.parametrize("method", ["none", "log1p", "rank", "quantile"])
def test_normalization_is_monotone(method):
    rng = np.random.default_rng(0)
    values = np.where(rng.random(5_000) < 0.7, 0.0, rng.gamma(0.5, 4.0, 5_000))
    _, out = _monotone(method, values)
    assert np.all(np.diff(out) >= 0)
    assert np.isfinite(out).all()
    if method in ("rank", "quantile"):
        assert out.min() == 0  # empty bins (and below) stay at 0
    if method == "rank":
        assert out.max() <= 1


def test_rank_is_strict_percentile_and_sketch_is_close():
    rng = np.random.default_rng(1)
    chroms = [np.where(rng.random(n) < 0.5, 0.0, rng.exponential(2.0, n)) for n in (3_000, 7_000)]
    allbins = np.concatenate(chroms)
    exact = normalize.fit_normalizer("rank", chroms)
    probe = np.quantile(allbins, [0.1, 0.6, 0.9, 0.99])
    expected = [(allbins < x).mean() for x in probe]
    np.testing.assert_allclose(exact.transform(probe), expected, atol=1e-12)
    assert exact.transform(np.array([0.0]))[0] == 0  # empty bins stay at 0
    sketch = normalize.fit_normalizer("rank", chroms, per_chrom=100)
    np.testing.assert_allclose(sketch.transform(probe), expected, atol=0.01)
    quantile = normalize.fit_normalizer("quantile", chroms).transform(probe)
    np.testing.assert_allclose(quantile, -np.log1p(-np.array(expected)), atol=1e-9)


def test_normalization_never_sees_labels(tracks):
    for function in (normalize.fit_normalizer, features.compute_features, features.epw_features):
        assert not [p for p in inspect.signature(function).parameters if "label" in p]
    paths, _ = tracks
    pairs = _pairs(np.random.default_rng(4)).assign(label=0)
    relabeled = pairs.assign(label=np.arange(len(pairs)) % 2)
    a = features.epw_features(pairs, paths, SIZES, normalization="rank")
    b = features.epw_features(relabeled, paths, SIZES, normalization="rank")
    pd.testing.assert_frame_equal(a, b)
    assert a.to_numpy().min() >= 0 and a.to_numpy().max() < 1


def test_normalization_is_applied_to_bins_before_the_cumsum(tracks):
    paths, dense = tracks
    pairs = _pairs(np.random.default_rng(8), n=10)
    table = features.epw_features(pairs, {"CTCF": paths["CTCF"]}, SIZES, normalization="log1p")
    for row in pairs.itertuples():
        step = np.log1p(_stepped(dense["CTCF"][row.chrom], 100))
        expected = _brute_mean(step, row.promoter_start, row.promoter_end)
        assert table.loc[row.Index, "CTCF_promoter"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    with pytest.raises(ValueError, match="normalization 'zscore'"):
        features.epw_features(pairs, paths, SIZES, normalization="zscore")


def _tads(*domains):
    return pd.DataFrame(domains, columns=["chrom", "start", "end"])


def _topology_pairs():
    # Enhancer midpoint 1_100, TSS 5_000 (row 0); enhancer midpoint 9_100, TSS 5_000 (row 1, other line).
    return pd.DataFrame(
        {
            "cell_line": ["A", "B", "A"],
            "chrom": ["chr1", "chr1", "chr1"],
            "enhancer_start": [1_000, 9_000, 3_000],
            "enhancer_end": [1_200, 9_200, 3_200],
            "promoter_start": [4_000, 4_000, 4_000],
            "promoter_end": [6_000, 6_000, 6_000],
            "tss": [5_000, 5_000, 5_000],
        }
    )


def test_topology_leave_self_out_and_counts():
    references = {
        "A": _tads(("chr1", 0, 10_000)),  # one big domain: everything together
        "B": _tads(("chr1", 0, 4_000), ("chr1", 4_000, 8_000), ("chr1", 500, 3_500)),  # nested domain
    }
    ctcf = _tads(("chr1", 2_000, 2_010), ("chr1", 6_000, 6_010), ("chr2", 3_000, 3_010))
    out = topology.topology_features(_topology_pairs(), references, heldout="C", ctcf_peaks=ctcf)
    # Row 0 (line A) sees only B: 1_100 and 5_000 in different domains, boundaries 3_500 and 4_000 between.
    assert out.loc[0, "same_tad"] == 0 and out.loc[0, "tad_boundaries_crossed"] == 2
    # Row 1 (line B) sees only A: one domain, no boundary between 5_000 and 9_100.
    assert out.loc[1, "same_tad"] == 1 and out.loc[1, "tad_boundaries_crossed"] == 0
    assert out.loc[0, "ctcf_crossed"] == 1 and out.loc[1, "ctcf_crossed"] == 1
    # Line A's other enhancer (3_100) lies between row 0's anchors; the table's only TSS is an anchor.
    assert out.loc[0, "enhancers_in_window"] == 1 and out.loc[1, "enhancers_in_window"] == 0
    assert (out["promoters_in_window"] == 0).all()
    tss = pd.DataFrame({"chrom": ["chr1", "chr1"], "tss": [2_500, 7_000]})
    assert topology.topology_features(_topology_pairs(), references, "C", tss=tss)["promoters_in_window"].tolist() == [
        1,
        1,
        0,
    ]


def test_topology_without_own_line_averages_all_lists():
    references = {"X": _tads(("chr1", 0, 10_000)), "Y": _tads(("chr1", 0, 3_000), ("chr1", 3_000, 10_000))}
    out = topology.topology_features(_topology_pairs(), references, heldout="Z")
    assert out.loc[0, "same_tad"] == 0.5 and out.loc[0, "tad_boundaries_crossed"] == 0.5
    assert "ctcf_crossed" not in out


def test_topology_refuses_heldout_hic():
    with pytest.raises(LeakageError, match="'A'"):
        topology.topology_features(_topology_pairs(), {"A": _tads(("chr1", 0, 10))}, heldout="A")


def test_sequence_codes_from_bgzipped_fasta(tmp_path):
    plain = tmp_path / "genome.fa"
    chr1 = "ACGTNacgtn" * 5  # 50 bases
    plain.write_text(f">chr1\n{chr1}\n>chr2\nGGGG\n")
    fasta = tmp_path / "genome.fa.gz"
    pysam.tabix_compress(str(plain), str(fasta))
    pysam.faidx(str(fasta))
    pairs = pd.DataFrame(
        {
            "chrom": ["chr1", "chr2"],
            "enhancer_start": [0, 0],
            "enhancer_end": [2, 4],
            "promoter_start": [40, 0],
            "promoter_end": [50, 4],
            "tss": [48, 2],
        }
    )
    codes = features.sequence_codes(fasta, pairs, length=8)
    lut = {"A": 0, "C": 1, "G": 2, "T": 3}
    expect = [lut.get(b.upper(), 4) for b in chr1]
    assert codes.dtype == np.int8 and codes.shape == (2, 2, 8)
    assert codes[0, 0].tolist() == [4] * 3 + expect[0:5]  # enhancer midpoint 1 → window [-3, 5)
    assert codes[0, 1].tolist() == expect[44:50] + [4, 4]  # TSS 48 → [44, 52), padded past the end
    assert codes[1, 0].tolist() == [4, 4] + [2] * 4 + [4, 4]
    with pytest.raises(InputError, match="chrX"):
        features.sequence_codes(fasta, pairs.assign(chrom="chrX"), length=8)


def test_save_and_load_features_round_trip(tmp_path, tracks):
    pairs = _pairs(np.random.default_rng(6), n=5)
    table, profile = features.compute_features(pairs, tracks[0], SIZES, n_bins=4)
    seq = np.zeros((len(pairs), 2, 16), dtype=np.int8)
    path = tmp_path / "features.npz"
    features.save_features(path, pairs.index, table, profile, list(tracks[0]), seq=seq)
    loaded = features.load_features(path)
    assert loaded["pair_id"].tolist() == list(pairs.index)
    assert loaded["columns"].tolist() == list(table.columns)
    np.testing.assert_array_equal(loaded["values"], table.to_numpy(np.float32))
    np.testing.assert_array_equal(loaded["profile"], profile)
    assert loaded["profile_marks"].tolist() == ["H3K27ac", "CTCF"] and loaded["seq"].dtype == np.int8
    features.save_features(tmp_path / "noseq.npz", pairs.index, table, profile, list(tracks[0]))
    assert "seq" not in features.load_features(tmp_path / "noseq.npz")


def test_real_bigwig_fixture_matches_pybigwig():
    path = DATA / "fixtures" / "test.bw"
    if not path.exists():
        pytest.skip("shared data folder missing")
    with pyBigWig.open(str(path)) as bw:
        size = bw.chroms("1")
        bins = track_bins.load_track(bw, "1", size, resolution=1_000_000)
        for i in (0, 1, bins.size - 1):
            end = min((i + 1) * 1_000_000, size)
            total = bw.stats("1", i * 1_000_000, end, type="sum", exact=True)[0] or 0.0
            assert bins[i] == pytest.approx(total / (end - i * 1_000_000), rel=1e-6, abs=1e-12)


def _rao_domains(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", usecols=["chr1", "x1", "x2"])
    return pd.DataFrame({"chrom": "chr" + table["chr1"].astype(str), "start": table["x1"], "end": table["x2"]})


def test_topology_on_real_hic_separates_bengi_positives():
    bengi = DATA / "bengi" / "IMR90.HiC-Benchmark.v3.tsv.gz"
    if not bengi.exists():
        pytest.skip("shared data folder missing")
    raw = pd.read_csv(bengi, sep="\t", header=None)
    pairs = pd.DataFrame(
        {
            "cell_line": "IMR90",
            "chrom": raw[2],
            "enhancer_start": raw[3],
            "enhancer_end": raw[4],
            "promoter_start": raw[7],
            "promoter_end": raw[8],
            "tss": raw[9].str.extract(r":(\d+)-", expand=False).astype(int),
            "label": raw[0],
        }
    )
    references = {c: _rao_domains(next((DATA / "hic").glob(f"GSE63525_{c}*Arrowhead*"))) for c in ("K562", "HeLa")}
    out = topology.topology_features(pairs, references, heldout="IMR90")
    by_label = out.groupby(pairs["label"].to_numpy()).mean()
    # Other lines' domains carry real signal: Hi-C positives share a domain far more often.
    assert by_label.loc[1, "same_tad"] > by_label.loc[0, "same_tad"] + 0.2
    assert by_label.loc[1, "tad_boundaries_crossed"] < by_label.loc[0, "tad_boundaries_crossed"]
    with pytest.raises(LeakageError):
        topology.topology_features(pairs, {**references, "IMR90": references["K562"]}, heldout="IMR90")
