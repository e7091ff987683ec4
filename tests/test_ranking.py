"""`vqscore.ranking` with an injected scorer (no model): means, the paired bootstrap, the win table, and the files
that are missing, extra or failed."""

from __future__ import annotations

import numpy as np
import pytest

from vqscore.ranking import (
    CHUNK_CELLS,
    RankingError,
    bootstrap_interval,
    rank_systems,
    system_names,
    win_matrix,
)


def fake_scorer(paths):
    """Each file holds its score as text, or 'fail: why' for a file the scorer cannot read."""
    out = []
    for path in paths:
        text = open(path, encoding="utf-8").read()
        out.append(f"{path}: {text[6:]}" if text.startswith("fail: ") else float(text))
    return out


def make_systems(root, systems: dict[str, dict[str, object]]) -> list[str]:
    """Folders root/NAME with one file per relative path, holding its score (or 'fail: ...')."""
    folders = []
    for name, files in systems.items():
        folder = root / name
        folder.mkdir(parents=True)
        for rel, value in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value if isinstance(value, str) else repr(float(value)), encoding="utf-8")
        folders.append(str(folder))
    return folders


@pytest.fixture
def three(tmp_path):
    """Systems a < b < c on 40 common files (b = a + 0.02 file by file, c well above with its own noise)."""
    rng = np.random.default_rng(3)
    base = rng.normal(0.7, 0.03, 40)
    values = {"a": base, "b": base + 0.02, "c": base + 0.05 + rng.normal(0, 0.01, 40)}
    folders = make_systems(tmp_path, {k: {f"f{i:02d}.wav": v[i] for i in range(40)} for k, v in values.items()})
    return folders, values


def test_means_order_and_intervals(three):
    folders, values = three
    ranking = rank_systems(folders, fake_scorer)
    assert [s.name for s in ranking.systems] == ["c", "b", "a"]
    assert ranking.common == 40 and all(s.files == 40 for s in ranking.systems)
    for s in ranking.systems:
        assert s.mean == pytest.approx(float(np.mean(values[s.name])), abs=1e-12)
        assert s.ci_low < s.mean < s.ci_high
        assert s.path == folders["abc".index(s.name)]
    np.testing.assert_allclose(ranking.scores, [values["c"], values["b"], values["a"]], atol=1e-12)
    assert ranking.files == tuple(f"f{i:02d}.wav" for i in range(40))
    assert ranking.missing == {} and ranking.extra == {} and ranking.failed == {}
    assert (ranking.resamples, ranking.seed, ranking.level) == (1000, 0, 0.95)
    with pytest.raises(ValueError):  # read-only results
        ranking.wins[0, 0] = 1.0


def test_bootstrap_is_seeded_and_paired(three):
    folders, _ = three
    first = rank_systems(folders, fake_scorer, seed=7)
    again = rank_systems(folders, fake_scorer, seed=7)
    other = rank_systems(folders, fake_scorer, seed=8)
    assert [(s.ci_low, s.ci_high) for s in first.systems] == [(s.ci_low, s.ci_high) for s in again.systems]
    assert [(s.ci_low, s.ci_high) for s in first.systems] != [(s.ci_low, s.ci_high) for s in other.systems]
    # paired: every resample draws the same files for all systems, so b = a + 0.02 keeps its interval 0.02 above
    by_name = {s.name: s for s in first.systems}
    assert by_name["b"].ci_low - by_name["a"].ci_low == pytest.approx(0.02, abs=1e-9)
    assert by_name["b"].ci_high - by_name["a"].ci_high == pytest.approx(0.02, abs=1e-9)


@pytest.mark.parametrize("n", [1, 5, CHUNK_CELLS // 300 + 7])  # the last: the resamples are drawn in several chunks
def test_bootstrap_equals_plain_resampling(n):
    scores = np.random.default_rng(n).normal(size=(3, n))
    resamples, seed = 300, 11
    low, high = bootstrap_interval(scores, resamples, seed, 0.9)
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_CELLS // n)
    picks = np.concatenate([rng.integers(0, n, size=(min(step, resamples - s), n)) for s in range(0, resamples, step)])
    means = scores[:, picks].mean(axis=2)  # (systems, resamples)
    np.testing.assert_allclose(low, np.quantile(means, 0.05, axis=1), atol=1e-12)
    np.testing.assert_allclose(high, np.quantile(means, 0.95, axis=1), atol=1e-12)
    if n == 1:  # one file: every resample is that file
        np.testing.assert_allclose(low, scores[:, 0])
        np.testing.assert_allclose(high, scores[:, 0])


def test_wins_are_antisymmetric_with_ties_half():
    scores = np.round(np.random.default_rng(0).normal(size=(4, 50)), 1)  # rounding makes ties
    wins = win_matrix(scores)
    assert wins.shape == (4, 4)
    np.testing.assert_allclose(wins + wins.T, np.ones((4, 4)), atol=1e-12)
    np.testing.assert_allclose(np.diag(wins), 0.5)
    # by hand: A beats B on files 2 and 3, ties on file 1, loses file 4: (2 + 0.5) / 4
    hand = win_matrix(np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 5.0]]))
    assert hand[0, 1] == 0.625 and hand[1, 0] == 0.375


def test_ranking_wins_follow_the_ranked_order(three):
    folders, values = three
    ranking = rank_systems(folders, fake_scorer)
    names = [s.name for s in ranking.systems]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            expected = np.mean(values[a] > values[b]) + 0.5 * np.mean(values[a] == values[b])
            assert ranking.wins[i, j] == pytest.approx(expected, abs=1e-12)
    assert ranking.wins[names.index("b"), names.index("a")] == 1.0  # b beats a on every file


def test_missing_and_extra_are_reported_exactly(tmp_path):
    folders = make_systems(
        tmp_path,
        {
            "a": {"x.wav": 0.5, "y.flac": 0.6, "z.wav": 0.7, "sub/w.wav": 0.1},
            "b": {"x.wav": 0.4, "y.flac": 0.5, "sub/w.wav": 0.2, "q.wav": 0.9},
            "c": {"x.wav": 0.3, "y.flac": 0.4, "sub/w.wav": 0.3, "notes.txt": "not audio, not walked"},
        },
    )
    ranking = rank_systems(folders, fake_scorer)
    assert ranking.files == ("sub/w.wav", "x.wav", "y.flac")
    assert ranking.missing == {"a": ("q.wav",), "b": ("z.wav",), "c": ("q.wav", "z.wav")}
    assert ranking.extra == {"a": ("z.wav",), "b": ("q.wav",)}
    assert ranking.failed == {}
    means = {s.name: s.mean for s in ranking.systems}
    assert means == pytest.approx({"a": 0.4, "b": 1.1 / 3, "c": 1.0 / 3})  # common files only


def test_failed_files_are_dropped_from_every_system(tmp_path):
    folders = make_systems(
        tmp_path,
        {
            "a": {"1.wav": 0.5, "2.wav": "fail: cannot read audio (broken)", "3.wav": 0.7},
            "b": {"1.wav": 0.4, "2.wav": 0.9, "3.wav": "nan"},
        },
    )
    ranking = rank_systems(folders, fake_scorer)
    assert ranking.files == ("1.wav",)
    assert ranking.failed == {
        "a": (("2.wav", f"{folders[0]}/2.wav: cannot read audio (broken)"),),
        "b": (("3.wav", "no score (NaN: digital silence or nothing to judge)"),),
    }
    assert [(s.name, s.mean, s.files) for s in ranking.systems] == [("a", 0.5, 1), ("b", 0.4, 1)]


def test_scorer_is_called_once_with_every_common_file(tmp_path):
    folders = make_systems(tmp_path, {"a": {"1.wav": 0.1, "2.wav": 0.2, "only-a.wav": 0.3}, "b": {"1.wav": 0.3, "2.wav": 0.1}})
    calls = []

    def scorer(paths):
        calls.append(list(paths))
        return fake_scorer(paths)

    rank_systems(folders, scorer)
    assert calls == [[f"{folders[0]}/1.wav", f"{folders[0]}/2.wav", f"{folders[1]}/1.wav", f"{folders[1]}/2.wav"]]


def test_equal_means_keep_the_order_given(tmp_path):
    folders = make_systems(tmp_path, {"z": {"1.wav": 0.5}, "a": {"1.wav": 0.5}})
    ranking = rank_systems(folders, fake_scorer)
    assert [s.name for s in ranking.systems] == ["z", "a"]
    assert ranking.wins.tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_names(tmp_path):
    assert system_names(["out/a/", "out/b"]) == ["a", "b"]
    assert system_names(["x/enhanced", "y/enhanced"]) == ["x/enhanced", "y/enhanced"]  # same name twice: the paths
    folders = make_systems(tmp_path / "x", {"enhanced": {"1.wav": 0.2}}) + make_systems(
        tmp_path / "y", {"enhanced": {"1.wav": 0.3}}
    )
    ranking = rank_systems(folders, fake_scorer, names=["first", "second"])
    assert [s.name for s in ranking.systems] == ["second", "first"]


def test_refusals(tmp_path):
    folders = make_systems(tmp_path, {"a": {"1.wav": 0.1}, "b": {"2.wav": 0.2}, "c": {"1.wav": "fail: no"}})
    a, b, c = folders
    cases = [
        ([a], {}, "need at least 2 system folders to rank, got 1"),
        ([a, str(tmp_path / "nope")], {}, f"{tmp_path / 'nope'}: no such folder"),
        ([a, f"{a}/1.wav"], {}, f"{a}/1.wav: not a folder (a system is a folder of its output files)"),
        ([a, f"{a}/."], {}, f"{a} and {a}/. are the same folder"),
        ([a, b], {}, "no common files: no relative path is present in every system folder (a: 1 files, b: 1 files)"),
        (
            [a, c],
            {},
            "no common files could be scored: each of the 1 files present in every system failed in at least one",
        ),
        ([a, c], {"resamples": 0}, "need at least 1 bootstrap resample, got 0"),
        ([a, c], {"names": ["x", "x"]}, "need one distinct name per system, got ['x', 'x']"),
    ]
    for args, options, message in cases:
        with pytest.raises(RankingError) as info:
            rank_systems(args, fake_scorer, **options)
        assert str(info.value) == message
    with pytest.raises(ValueError, match="the scorer returned 1 scores for 2 files"):
        rank_systems([a, c], lambda paths: [0.5])
    assert [s.name for s in rank_systems([a, c], lambda paths: [0.1, 0.2]).systems] == ["c", "a"]
