"""VectorQuantizer numerics checked against independent numpy / hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import reference_atol

from vqscore.audio import load_audio
from vqscore.features import spectrum
from vqscore.models import QEVQVAE, SEVQVAE, QEConfig, SEConfig
from vqscore.official import load_official
from vqscore.quantizer import VectorQuantizer, kmeans, laplace_smoothing


def quantizer_with(codebook: np.ndarray, distance: str, decay: float = 0.8, eps: float = 1e-5) -> VectorQuantizer:
    size, dim = codebook.shape
    q = VectorQuantizer(size, dim, distance, decay=decay, eps=eps)
    q.codebook.copy_(torch.from_numpy(codebook))
    q.codebook_avg.copy_(torch.from_numpy(codebook))
    q.cluster_size.fill_(1.0)
    q.initialized.fill_(True)
    return q


def numpy_nearest(z: np.ndarray, codebook: np.ndarray, distance: str) -> np.ndarray:
    """Brute force, float64, loops over codewords: the lowest index among the best."""
    z = z.reshape(-1, z.shape[-1]).astype(np.float64)
    cb = codebook.astype(np.float64)
    out = []
    for x in z:
        if distance == "cosine":
            xn = x / max(np.linalg.norm(x), 1e-12)
            scores = [float(xn @ (c / max(np.linalg.norm(c), 1e-12))) for c in cb]
            best = max(scores)
        else:
            scores = [-float(np.sqrt(((x - c) ** 2).sum())) for c in cb]
            best = max(scores)
        out.append(min(i for i, s in enumerate(scores) if s == best))
    return np.array(out)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_nearest_equals_brute_force(distance):
    rng = np.random.default_rng(3)
    codebook = rng.standard_normal((50, 6)).astype(np.float32)
    if distance == "cosine":
        codebook /= np.linalg.norm(codebook, axis=1, keepdims=True)
    z = rng.standard_normal((3, 40, 6)).astype(np.float32) * rng.uniform(0.1, 5, (3, 40, 1)).astype(np.float32)
    q = quantizer_with(codebook, distance).eval()
    got = q.nearest(torch.from_numpy(z))
    assert got.shape == (3, 40) and got.dtype == torch.int64
    want = numpy_nearest(z, codebook, distance).reshape(3, 40)
    np.testing.assert_array_equal(got.numpy(), want)
    assert len(np.unique(want)) > 20  # many different codewords are exercised
    out = q(torch.from_numpy(z))
    np.testing.assert_array_equal(out.indices.numpy(), want)
    np.testing.assert_array_equal(out.zq.numpy(), codebook[want])
    assert float(out.commitment) == 0.0


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_ties_go_to_the_lowest_index(distance):
    rng = np.random.default_rng(0)
    codebook = rng.standard_normal((10, 4)).astype(np.float32)
    codebook /= np.linalg.norm(codebook, axis=1, keepdims=True)
    codebook[7] = codebook[3]
    codebook[9] = codebook[3]
    codebook[5] = codebook[2]
    z = np.stack([codebook[3], codebook[9] * 2.0, codebook[5], codebook[2] + 1e-3 * codebook[2]])[None]
    q = quantizer_with(codebook, distance).eval()
    got = q.nearest(torch.from_numpy(z))[0].tolist()
    # rows 3, 7, 9 are identical, and so are rows 2 and 5 (for unit codewords, 2 * e is nearest to e in both metrics)
    assert got == [3, 3, 2, 2]
    assert got == numpy_nearest(z, codebook, distance).tolist()


def test_euclidean_ties_between_zero_codewords():
    """The official SE case: several all-zero codewords; a frame nearest to zero takes the lowest of them."""
    codebook = np.zeros((8, 3), np.float32)
    codebook[0] = [5, 5, 5]
    codebook[1] = [-5, 5, 0]
    codebook[4] = [0, 0, 9]
    z = np.array([[[0.1, -0.2, 0.05], [4.0, 5.0, 6.0], [0.0, 0.0, 0.0]]], np.float32)
    q = quantizer_with(codebook, "euclidean").eval()
    assert q.nearest(torch.from_numpy(z))[0].tolist() == [2, 0, 2]


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_straight_through_gradient_and_commitment(distance):
    rng = np.random.default_rng(1)
    codebook = rng.standard_normal((16, 5)).astype(np.float32)
    if distance == "cosine":
        codebook /= np.linalg.norm(codebook, axis=1, keepdims=True)
    q = quantizer_with(codebook, distance).train()
    z = torch.from_numpy(rng.standard_normal((2, 9, 5)).astype(np.float32)).requires_grad_(True)
    weights = torch.from_numpy(rng.standard_normal((2, 9, 5)).astype(np.float32))

    out = q(z, update=False)
    indices = numpy_nearest(z.detach().numpy(), codebook, distance).reshape(2, 9)
    np.testing.assert_array_equal(out.indices.numpy(), indices)
    # the forward value is the codeword itself (up to the straight-through float rounding)
    np.testing.assert_allclose(out.zq.detach().numpy(), codebook[indices], rtol=0, atol=1e-6)
    (out.zq * weights).sum().backward()

    # the gradient wrt zq is `weights`; straight through, it reaches z as if zq were the (normalised) z
    z_ref = z.detach().clone().requires_grad_(True)
    transformed = F.normalize(z_ref, dim=-1) if distance == "cosine" else z_ref
    (transformed * weights).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), z_ref.grad.numpy(), rtol=1e-6, atol=1e-7)
    if distance == "euclidean":
        np.testing.assert_array_equal(z.grad.numpy(), weights.numpy())

    # commitment = MSE(codeword, normalised z), by hand in numpy
    zn = z.detach().numpy().astype(np.float64)
    if distance == "cosine":
        zn = zn / np.linalg.norm(zn, axis=-1, keepdims=True)
    want = np.mean((codebook[indices].astype(np.float64) - zn) ** 2)
    assert out.commitment.item() == pytest.approx(want, rel=1e-5)


def test_commitment_gradient_flows_into_z_only():
    rng = np.random.default_rng(2)
    codebook = rng.standard_normal((8, 4)).astype(np.float32)
    q = quantizer_with(codebook, "euclidean").train()
    z = torch.from_numpy(rng.standard_normal((1, 6, 4)).astype(np.float32)).requires_grad_(True)
    out = q(z, update=False)
    out.commitment.backward()
    idx = out.indices[0].numpy()
    # d/dz mean((sg(e) - z)^2) = 2 (z - e) / numel
    want = 2 * (z.detach().numpy()[0] - codebook[idx]) / z.numel()
    np.testing.assert_allclose(z.grad.numpy()[0], want, rtol=1e-5, atol=1e-7)


def test_ema_moves_codeword_by_one_minus_decay_toward_its_sample():
    """Every codeword gets exactly one sample and had cluster size 1: smoothing cancels, so the update is exactly
    e <- decay * e + (1 - decay) * x."""
    rng = np.random.default_rng(4)
    codebook = (rng.standard_normal((6, 3)) * np.array([[10.0], [20], [30], [40], [50], [60]])).astype(np.float32)
    decay = 0.8
    q = quantizer_with(codebook, "euclidean", decay=decay).train()
    samples = codebook + rng.standard_normal((6, 3)).astype(np.float32)  # each nearest to its own codeword
    perm = rng.permutation(6)
    out = q(torch.from_numpy(samples[perm])[None])
    np.testing.assert_array_equal(out.indices[0].numpy(), perm)
    want = decay * codebook.astype(np.float64) + (1 - decay) * samples
    np.testing.assert_allclose(q.codebook.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(q.cluster_size.numpy(), np.ones(6), rtol=0, atol=1e-6)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_ema_update_matches_hand_formula(distance):
    """The general EMA step with Laplace smoothing, computed by hand in float64."""
    rng = np.random.default_rng(5)
    size, dim, decay, eps = 5, 3, 0.8, 1e-5
    codebook = rng.standard_normal((size, dim)).astype(np.float32)
    if distance == "cosine":
        codebook /= np.linalg.norm(codebook, axis=1, keepdims=True)
    q = quantizer_with(codebook, distance, decay=decay, eps=eps).train()
    cluster = np.array([3.0, 0.5, 0.0, 7.0, 1.0], np.float32)
    avg = (codebook * cluster[:, None] + 0.1 * rng.standard_normal((size, dim))).astype(np.float32)
    q.cluster_size.copy_(torch.from_numpy(cluster))
    q.codebook_avg.copy_(torch.from_numpy(avg))
    z = rng.standard_normal((2, 11, dim)).astype(np.float32)

    out = q(torch.from_numpy(z))
    x = z.reshape(-1, dim).astype(np.float64)
    if distance == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    idx = numpy_nearest(z, codebook, distance)
    np.testing.assert_array_equal(out.indices.numpy().reshape(-1), idx)
    counts = np.bincount(idx, minlength=size).astype(np.float64)
    sums = np.zeros((size, dim))
    for i, k in enumerate(idx):
        sums[k] += x[i]
    new_cluster = decay * cluster + (1 - decay) * counts
    new_avg = decay * avg + (1 - decay) * sums
    total = new_cluster.sum()
    smoothed = (new_cluster + eps) / (total + size * eps) * total
    want = new_avg / smoothed[:, None]
    if distance == "cosine":
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(q.cluster_size.numpy(), new_cluster, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q.codebook_avg.numpy(), new_avg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q.codebook.numpy(), want, rtol=1e-5, atol=1e-5)
    # the laplace_smoothing helper is (n + eps) / (N + K eps)
    t = torch.tensor([1.0, 0.0, 3.0])
    np.testing.assert_allclose(laplace_smoothing(t, 0.5).numpy(), (np.array([1, 0, 3]) + 0.5) / (4 + 1.5), rtol=1e-6)


def test_update_false_and_eval_leave_the_codebook_alone():
    rng = np.random.default_rng(6)
    codebook = rng.standard_normal((8, 4)).astype(np.float32)
    z = torch.from_numpy(rng.standard_normal((1, 10, 4)).astype(np.float32))
    for mode, update in (("train", False), ("eval", True)):
        q = quantizer_with(codebook, "euclidean")
        q.train(mode == "train")
        before = {k: v.clone() for k, v in q.state_dict().items()}
        q(z, update=update)
        for k, v in q.state_dict().items():
            assert torch.equal(v, before[k]), (mode, k)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_masked_frames_do_not_change_the_ema_update(distance):
    rng = np.random.default_rng(7)
    codebook = rng.standard_normal((6, 4)).astype(np.float32)
    if distance == "cosine":
        codebook /= np.linalg.norm(codebook, axis=1, keepdims=True)
    valid_a = rng.standard_normal((5, 4)).astype(np.float32)
    valid_b = rng.standard_normal((3, 4)).astype(np.float32)
    z = np.zeros((2, 5, 4), np.float32)
    z[0] = valid_a
    z[1, :3] = valid_b
    z[1, 3:] = 100 * rng.standard_normal((2, 4))  # garbage in the padded frames
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])

    masked = quantizer_with(codebook, distance).train()
    out = masked(torch.from_numpy(z), mask=mask)
    reference = quantizer_with(codebook, distance).train()
    ref_out = reference(torch.from_numpy(np.concatenate([valid_a, valid_b]))[None])
    for key in ("codebook", "codebook_avg", "cluster_size"):
        np.testing.assert_allclose(
            getattr(masked, key).numpy(), getattr(reference, key).numpy(), rtol=1e-6, atol=1e-7, err_msg=key
        )
    assert float(masked.cluster_size.sum()) == pytest.approx(6 * 0.8 + 8 * 0.2, abs=1e-5)
    assert float(out.commitment) == pytest.approx(float(ref_out.commitment), rel=1e-6)


def test_masked_frames_do_not_change_kmeans_init():
    rng = np.random.default_rng(8)
    valid = rng.standard_normal((40, 3)).astype(np.float32)
    z = np.concatenate([valid, 1000 + rng.standard_normal((10, 3)).astype(np.float32)])[None]
    mask = torch.tensor([[True] * 40 + [False] * 10])
    a = VectorQuantizer(8, 3, "euclidean").train()
    b = VectorQuantizer(8, 3, "euclidean").train()
    torch.manual_seed(0)
    a(torch.from_numpy(z), mask=mask)
    torch.manual_seed(0)
    b(torch.from_numpy(valid)[None])
    assert torch.equal(a.codebook, b.codebook)
    assert float(a.codebook.abs().max()) < 100  # no garbage frame became a codeword


def test_kmeans_on_fewer_samples_than_codewords_duplicates_means():
    """Fewer frames than codewords: initial means drawn with replacement; duplicates lose every member and keep
    their value, so some codewords are identical (the official behaviour). One EMA step then zeroes them."""
    rng = np.random.default_rng(9)
    samples = torch.from_numpy(rng.standard_normal((10, 4)).astype(np.float32))
    means, counts = kmeans(samples, 32, iters=10, distance="euclidean", generator=torch.Generator().manual_seed(0))
    assert means.shape == (32, 4)
    unique = torch.unique(means, dim=0)
    assert len(unique) <= 10 < 32  # duplicated means
    assert int(counts.sum()) == 10
    assert int((counts > 0).sum()) <= 10 and int((counts == 0).sum()) >= 22
    # every mean is one of the samples' cluster means: an empty cluster keeps a drawn sample
    for row, c in zip(means, counts, strict=True):
        if c == 0:
            assert bool((samples == row).all(dim=1).any())

    q = VectorQuantizer(32, 4, "euclidean").train()
    torch.manual_seed(0)
    q(samples[None])
    zero = q.codebook.norm(dim=1) == 0
    assert int(zero.sum()) >= 22
    assert float(q.cluster_size.sum()) == pytest.approx(10.0, abs=1e-5)
    # all non-zero codewords are distinct, all zero codewords identical
    nonzero = q.codebook[~zero]
    assert len(torch.unique(nonzero, dim=0)) == len(nonzero)


def test_kmeans_with_enough_samples_has_distinct_means():
    rng = np.random.default_rng(10)
    samples = torch.from_numpy(rng.standard_normal((200, 4)).astype(np.float32))
    means, counts = kmeans(samples, 16, iters=10, distance="cosine", generator=torch.Generator().manual_seed(0))
    assert len(torch.unique(means, dim=0)) == 16
    assert int(counts.sum()) == 200
    np.testing.assert_allclose(means.norm(dim=1).numpy(), np.ones(16), rtol=0, atol=1e-5)


def numpy_lloyd(samples: np.ndarray, start: np.ndarray, iters: int, distance: str) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means in float64 from the given initial means: the lowest index wins ties, a cluster that ends an
    iteration empty keeps its mean, cosine means are renormalised."""
    x = samples.astype(np.float64)
    means = x[start].copy()
    counts = np.zeros(len(start), np.int64)
    for _ in range(iters):
        if distance == "cosine":
            buckets = (x @ means.T).argmax(axis=1)
        else:
            buckets = ((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(axis=1)
        counts = np.bincount(buckets, minlength=len(means))
        sums = np.zeros_like(means)
        np.add.at(sums, buckets, x)
        new = sums / np.maximum(counts, 1)[:, None]
        if distance == "cosine":
            new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
        means = np.where((counts == 0)[:, None], means, new)
    return means, counts


@pytest.mark.parametrize("config", [QEConfig(), SEConfig()], ids=["qe", "se"])
def test_kmeans_init_runs_ten_lloyd_iterations(config):
    """The models' k-means init (METHOD.md: 10 iterations; QE cosine, SE Euclidean) = ten Lloyd iterations in that
    distance from a seeded draw of initial means, on data far from converged after ten, so the iteration count and
    the distance both show (the seeded official init below cannot show them: there nearly every frame is its own
    initial mean). Seeded so that no assignment is a near-tie: the smallest top-2 gap over the iterations is 6e-5
    (cosine) and 2e-5 (distance), far above float32 rounding, so the counts are the same on any CPU."""
    distance = config.distance
    rng = np.random.default_rng(17)
    x = rng.standard_normal((1500, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit frames, as the cosine transform gives; fine for Euclidean too
    size = 48
    q = VectorQuantizer(size, 8, distance, decay=config.ema_decay, kmeans_iters=config.kmeans_iters).train()
    q.init_from(torch.from_numpy(x), generator=torch.Generator().manual_seed(0))
    start = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:size].numpy()
    means, counts = numpy_lloyd(x, start, 10, distance)
    np.testing.assert_array_equal(q.cluster_size.numpy(), counts)
    np.testing.assert_allclose(q.codebook.numpy(), means, rtol=0, atol=1e-5)
    np.testing.assert_allclose(q.codebook_avg.numpy(), means * counts[:, None], rtol=0, atol=1e-4)
    # the data is sensitive to what is being pinned: 9 or 11 iterations, or the other distance, give other counts
    other = "euclidean" if distance == "cosine" else "cosine"
    for iters, dist in ((9, distance), (11, distance), (10, other)):
        assert not np.array_equal(numpy_lloyd(x, start, iters, dist)[1], counts), (iters, dist)


def nearest_similarity(frames: torch.Tensor, codebook: torch.Tensor, distance: str) -> torch.Tensor:
    """float64: each transformed frame's similarity to its nearest codeword (cosine, or minus Euclidean distance)."""
    frames, codebook = frames.double(), codebook.double()
    if distance == "cosine":
        return (frames @ F.normalize(codebook, dim=-1).t()).max(dim=-1).values
    return -torch.cdist(frames, codebook).min(dim=-1).values


def relabelled_groups(mine: dict, official: dict, rows: np.ndarray, atol: dict) -> tuple[list[list[int]], list[str]]:
    """Group the rows that differ into relabellings among near-duplicate codewords: (groups, problems).

    The seeded k-means draws its 2048/4096 initial means with replacement from fewer frames, so a frame is often
    drawn several times. Copies of one frame differ by an ulp or so once k-means renormalises the ones that keep
    members, so every frame is a near-tie between them (cosine gap ~1e-15 here), and which copy wins is decided by
    rounding: it changes with the summation order, and from one iteration to the next. A differing row is explained
    when the rows holding (a copy of) its codeword in either codebook, its group, number at least two, are each
    either zero or that codeword in both codebooks, hold the same frames in total (equal sums of cluster_size and
    codebook_avg), and one frame's k-means and EMA-step members make one or two non-zero rows of it in each.
    """
    cb, cb_off = mine["quantizer.codebook"], official["quantizer.codebook"]
    groups, problems = [], []
    for r in rows:
        if any(r in g for g in groups):
            continue
        value = cb[r] if cb[r].any() else cb_off[r]
        if not value.any():
            problems.append(f"row {r}: zero in both codebooks but the EMA buffers differ")
            continue
        near, near_official = ((c - value).abs().amax(dim=1) <= atol["quantizer.codebook"] for c in (cb, cb_off))
        group = torch.nonzero(near | near_official).flatten()
        nonzero = [int((c[group].norm(dim=1) > 0).sum()) for c in (cb, cb_off)]
        copies_only = all(
            bool((close[group] | (c[group].norm(dim=1) == 0)).all()) for close, c in ((near, cb), (near_official, cb_off))
        )
        same_members = all(
            bool((mine[key][group].sum(0) - official[key][group].sum(0)).abs().max() <= atol[key])
            for key in ("quantizer.cluster_size", "quantizer.codebook_avg")
        )
        if len(group) < 2 or not copies_only or not same_members or not all(k in (1, 2) for k in nonzero):
            problems.append(
                f"row {r}: group {group.tolist()}, copies only {copies_only}, same members {same_members}, "
                f"non-zero rows {nonzero}, cluster_size {mine['quantizer.cluster_size'][group].tolist()} vs "
                f"{official['quantizer.cluster_size'][group].tolist()}"
            )
        groups.append(group.tolist())
    return groups, problems


@pytest.mark.parametrize("kind", ["qe", "se"])
def test_seeded_init_reproduces_official_codebook(reference_dir, kind):
    """torch.manual_seed(0); build; one training-mode forward of the clean file: the k-means init + one EMA step
    reproduce the official checkpoint's codebook buffers (and the encoder weights: same init order).

    What k-means guarantees, not one tie-sensitive outcome (issue 8: QE row 1520 differed on Intel AVX-512):
    (a) the same objective, (b) the same buffers row for row except a few rows that only relabel near-duplicate
    codewords, (c) the same zero codewords outside those rows and all frames counted, (d) the same encoder weights.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        # measured: ATen's non-vectorised kernels draw other initial weights from the same seed (up to ~1e5 ulps)
        pytest.skip(f"seeded weights are reproducible on AVX2/AVX-512 kernels only (this CPU: {capability})")
    torch.manual_seed(0)
    network = (QEVQVAE if kind == "qe" else SEVQVAE)()
    network.train()
    wav = torch.from_numpy(load_audio(reference_dir / "clean_p232_005.wav").samples)
    with torch.no_grad():
        z = network.encode(spectrum(wav[None], network.features))
        network.quantize(z)
    _, official = load_official(reference_dir / f"{kind}_seed0.pkl")
    mine = network.state_dict()

    # (d) the encoder weights come from the seed alone: exact
    for key in official:
        if key.startswith("encoder."):
            assert torch.equal(mine[key], official[key]), key

    q = network.quantizer
    # METHOD.md's EMA decay, Laplace eps and k-means iterations: on this fixture they barely show in the buffers
    # (nearly every frame is its own initial mean, and decay only shows where a frame's two members split)
    assert (q.decay, q.eps, q.kmeans_iters) == (0.8, 1e-5, 10)
    frames = q.transform(z).reshape(-1, q.dim)
    n, size = frames.shape[0], q.size
    keys = ("quantizer.codebook", "quantizer.codebook_avg", "quantizer.cluster_size")
    # codewords are (normalised) means of z's frames, so they carry z's reordering error; cluster sizes are
    # 0.8 k + 0.2 k' for integer counts, the same floats on any CPU where the assignments agree.
    atol = {key: reference_atol(official[key].numpy(), "codebook") for key in keys[:2]}
    atol["quantizer.cluster_size"] = 1e-6

    # (a) the k-means objective: mean similarity of the frames to their nearest codeword. Measured here, off the
    # official codebook's: QE <= 4e-12, SE <= 5e-7 (4e-8 with the default kernels; see helpers.REORDER_ULPS).
    # One k-means iteration instead of ten moves it by 5e-4 (QE) / 1.7e-2 (SE), cosine k-means for SE by 2.2.
    got_objective = float(nearest_similarity(frames, mine["quantizer.codebook"], q.distance).mean())
    want_objective = float(nearest_similarity(frames, official["quantizer.codebook"], q.distance).mean())
    assert got_objective == pytest.approx(want_objective, abs=5e-6)

    # (b) row for row, except a few (<= 0.5 %) rows that near-ties between copies of one frame relabel. Seen here
    # (Intel AVX-512): rows 52/1520 (copies of frame 261) and 225/1952 (frame 367) swap which copy holds the frame.
    differs = torch.zeros(size, dtype=torch.bool)
    for key in keys:
        diff = (mine[key] - official[key]).abs()
        differs |= (diff.amax(dim=1) if diff.dim() == 2 else diff) > atol[key]
    rows = torch.nonzero(differs).flatten().numpy()
    assert len(rows) <= 0.005 * size, f"{len(rows)} rows differ: {rows.tolist()}"
    groups, problems = relabelled_groups(mine, official, rows, atol)
    assert problems == []
    if groups:
        print(f"{kind}: rows relabelled among copies of one frame: {groups}")

    # (c) the zero codewords (initial means that never won a frame), exactly outside the relabelled groups; inside,
    # one or two copies of a frame are non-zero (its k-means and EMA-step members are one copy or two), so the total
    # can move by one per group: 1656 here and on the official machine, but 1657 with MKL and 1654 with oneDNN
    # forced to AVX2 on this machine (and 1655/1657 with 8/11 k-means iterations, which (b) and (a) cannot tell
    # from 10 either: test_kmeans_init_runs_ten_lloyd_iterations pins the iteration count and the distance).
    zero, zero_official = (buffers["quantizer.codebook"].norm(dim=1) == 0 for buffers in (mine, official))
    outside = torch.ones(size, dtype=torch.bool)
    outside[[row for group in groups for row in group]] = False
    assert torch.equal(zero[outside], zero_official[outside])
    assert int(zero_official.sum()) == (1656 if kind == "qe" else 3315)
    assert abs(int(zero.sum()) - int(zero_official.sum())) <= len(groups)
    assert float(mine["quantizer.cluster_size"].sum()) == pytest.approx(n, abs=1e-3)
    assert float(official["quantizer.cluster_size"].sum()) == pytest.approx(n, abs=1e-3)


def test_cross_entropy_equals_hand_computation_and_ignores_masked_frames():
    rng = np.random.default_rng(11)
    codebook = rng.standard_normal((7, 4)).astype(np.float32)
    codebook /= np.linalg.norm(codebook, axis=1, keepdims=True)
    q = quantizer_with(codebook, "cosine").eval()
    z = rng.standard_normal((2, 6, 4)).astype(np.float32)
    targets = rng.integers(0, 7, (2, 6))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False

    got = q.cross_entropy(torch.from_numpy(z), torch.from_numpy(targets), torch.from_numpy(mask))
    # by hand: logits = cos(z, codeword); mean over valid frames of logsumexp - logit[target]
    zn = z.astype(np.float64) / np.linalg.norm(z, axis=-1, keepdims=True)
    logits = zn @ codebook.astype(np.float64).T
    losses = np.log(np.exp(logits).sum(-1)) - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
    assert float(got) == pytest.approx(losses[mask].mean(), rel=1e-5)
    # torch's own F.cross_entropy on the valid frames only
    flat = torch.from_numpy(logits[mask]).float()
    assert float(got) == pytest.approx(float(F.cross_entropy(flat, torch.from_numpy(targets[mask]))), rel=1e-5)
    # masked targets do not matter, even out-of-range ones
    other = targets.copy()
    other[1, 4:] = [0, 6]
    assert float(q.cross_entropy(torch.from_numpy(z), torch.from_numpy(other), torch.from_numpy(mask))) == float(got)
    # no mask: every frame counts
    assert float(q.cross_entropy(torch.from_numpy(z), torch.from_numpy(targets))) == pytest.approx(losses.mean(), rel=1e-5)


def test_cross_entropy_euclidean_logits_are_negative_distances():
    rng = np.random.default_rng(12)
    codebook = rng.standard_normal((5, 3)).astype(np.float32)
    q = quantizer_with(codebook, "euclidean").eval()
    z = torch.from_numpy(rng.standard_normal((1, 4, 3)).astype(np.float32)).requires_grad_(True)
    targets = torch.tensor([[0, 4, 2, 2]])
    loss = q.cross_entropy(z, targets)
    dist = np.sqrt(((z.detach().numpy()[0][:, None, :].astype(np.float64) - codebook[None]) ** 2).sum(-1))
    logits = -dist
    want = np.mean(np.log(np.exp(logits).sum(-1)) - logits[np.arange(4), targets[0].numpy()])
    assert loss.item() == pytest.approx(want, rel=1e-5)
    loss.backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0  # gradients reach z
    assert not q.codebook.requires_grad


def test_unknown_distance_is_refused():
    with pytest.raises(ValueError, match=r"unknown distance 'manhattan'"):
        VectorQuantizer(4, 2, "manhattan")
