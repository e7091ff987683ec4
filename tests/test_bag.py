"""Bags of QE models (vqscore.bag): the score is exactly the mean of the members' scores on every path that uses it
(the API, the VQScore selector, `vqscore rank`), bag files are checked field by field, and shipping the members'
bundles leaves "default" where it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from helpers import read_rows, speech_like, tiny_network

import vqscore
from vqscore.bag import BagError, BagSpec, ModelBag, load_bag, load_scorer, shipped_bags
from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.ranking import model_scorer
from vqscore.selectors import build_selector


@pytest.fixture(scope="module")
def bag_file(tmp_path_factory):
    """A bag of two tiny QE bundles of different seeds, named by paths relative to the bag file."""
    root = tmp_path_factory.mktemp("bag")
    for seed in (0, 1):
        save_bundle(tiny_network("qe", seed=seed), root / "models", name=f"tiny-qe-{seed}", version="0.0.1")
    path = root / "tiny-bag.json"
    members = ["models/tiny-qe-0.json", "models/tiny-qe-1.json"]
    path.write_text(json.dumps({"name": "tiny-bag", "members": members}))
    return path


def members_of(bag_file) -> list[vqscore.Model]:
    return [vqscore.load(bag_file.parent / "models" / f"tiny-qe-{seed}.json") for seed in (0, 1)]


def test_bag_score_is_the_mean_of_its_members(bag_file):
    bag = load_scorer(bag_file)
    assert isinstance(bag, ModelBag) and bag.name == "tiny-bag" and len(bag.models) == 2
    one = speech_like(1.0, seed=3)
    rows = np.stack([speech_like(1.0, seed=4), speech_like(1.0, seed=5)])
    members = members_of(bag_file)
    expected_one = np.mean([m.vqscore(one, sr=16000) for m in members])
    got = bag.vqscore(one, sr=16000)
    assert isinstance(got, float) and got == pytest.approx(expected_one, abs=1e-12)
    # the members really differ, so the mean is not trivially one of them
    assert abs(members[0].vqscore(one, sr=16000) - members[1].vqscore(one, sr=16000)) > 1e-4
    got_rows = bag.vqscore(rows, sr=16000)
    assert isinstance(got_rows, np.ndarray) and got_rows.shape == (2,)
    np.testing.assert_allclose(got_rows, np.mean([m.vqscore(rows, sr=16000) for m in members], axis=0), atol=1e-12)
    got_list = bag.vqscore([one, rows[0]], sr=16000)
    assert isinstance(got_list, list)
    np.testing.assert_allclose(got_list, np.mean([m.vqscore([one, rows[0]], sr=16000) for m in members], axis=0), atol=1e-12)


def test_bag_pooling_reaches_every_member(bag_file, tmp_path):
    path = tmp_path / "p10.json"
    path.write_text(
        json.dumps({"name": "p10", "pooling": "p10", "members": [str(bag_file.parent / "models" / "tiny-qe-0.json")]})
    )
    bag = load_bag(path)
    wav = speech_like(1.0, seed=6)
    assert bag.pooling == "p10"
    assert bag.vqscore(wav, sr=16000) == pytest.approx(members_of(bag_file)[0].with_pooling("p10").vqscore(wav, sr=16000))
    assert load_bag(path, pooling="mean").pooling == "mean"
    assert bag.with_pooling("median").pooling == "median"


def test_load_scorer_gives_a_plain_model_for_a_model(bag_file):
    model = load_scorer(bag_file.parent / "models" / "tiny-qe-0.json")
    assert isinstance(model, vqscore.Model)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"name": "x", "members": []}, "'members' must be a non-empty list of model names or bundle paths"),
        ({"name": "x", "members": ["a"], "weights": 1}, "unknown field(s) ['weights']"),
        ({"name": "x", "members": ["a"], "pooling": "max"}, "unknown pooling 'max'"),
        ([1, 2], "a bag file holds a JSON object, got list"),
    ],
)
def test_bag_file_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(BagError) as info:
        BagSpec.read(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_member_that_cannot_load_is_named(tmp_path):
    path = tmp_path / "bag.json"
    path.write_text(json.dumps({"name": "broken", "members": ["no-such-model-anywhere"]}))
    with pytest.raises(BagError, match="bag 'broken': member 'no-such-model-anywhere' cannot be loaded: no shipped bundle"):
        load_scorer(path)


def test_an_se_member_is_refused(tmp_path):
    save_bundle(tiny_network("se"), tmp_path, name="tiny-se", version="0.0.1")
    path = tmp_path / "bag.json"
    path.write_text(json.dumps({"name": "se-bag", "members": ["tiny-se.json"]}))
    with pytest.raises(BagError, match="member tiny-se is an SE"):
        load_scorer(path)


def test_unknown_bag_name():
    with pytest.raises(BagError, match="no shipped bag named 'nope'"):
        load_bag("nope")


def test_shipped_seed_bag_and_default_stays_v2():
    assert "vqscore-qe-seeds" in shipped_bags()
    bag = load_scorer("vqscore-qe-seeds")
    assert [m.name for m in bag.models] == ["vqscore-qe-cleanspeech"] + [
        f"vqscore-qe-cleanspeech-seed-{k}" for k in (1, 2, 3, 4)
    ]
    assert {m.conditioning.name for m in bag.models} == {"robust"} and bag.pooling == "p25"
    # the seed bundles sort after v2 by name: "default" must still be the v2 model, not a bag member
    default = vqscore.load("default")
    assert (default.name, default.info.version) == ("vqscore-qe-cleanspeech", "2.0.0")


def test_vqscore_selector_with_a_bag(bag_file):
    selector = build_selector("vqscore", model=str(bag_file), pooling="mean")
    outputs = [speech_like(1.0, seed=7), speech_like(1.0, seed=7, noise=0.2)]
    got = selector.scores(outputs)
    expected = np.mean([m.with_pooling("mean").vqscore(outputs, sr=16000) for m in members_of(bag_file)], axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert selector.name.startswith("vqscore (tiny-bag[tiny-qe-0@0.0.1#")


def test_rank_with_a_bag_scores_the_mean(bag_file, tmp_path, capsys):
    systems = []
    for name, noise in (("clean", 0.01), ("noisy", 0.3)):
        folder = tmp_path / name
        folder.mkdir()
        for k in range(3):
            sf.write(str(folder / f"{k}.wav"), speech_like(1.0, seed=k, noise=noise), 16000)
        systems.append(folder)
    paths = sorted(str(p) for p in systems[0].glob("*.wav"))
    by_member = [model_scorer(m)(paths) for m in members_of(bag_file)]
    assert model_scorer(load_scorer(bag_file))(paths) == pytest.approx(np.mean(by_member, axis=0).tolist(), abs=1e-12)
    table = tmp_path / "rank.json"
    assert main(["rank", *map(str, systems), "--model", str(bag_file), "--table", str(table)]) == 0
    written = json.loads(table.read_text())
    assert written["model"].startswith("tiny-bag[tiny-qe-0@0.0.1#") and "mean of 2 models" in written["scoring"]
    clean = next(s for s in written["systems"] if s["system"] == "clean")
    assert clean["mean"] == pytest.approx(float(np.mean(by_member)), abs=1e-9)


def test_vqscore_score_takes_a_bag(bag_file):
    wav = speech_like(1.0, seed=8)
    bag = load_scorer(bag_file)
    assert vqscore.score(wav, 16000, model=str(bag_file)) == pytest.approx(bag.vqscore(wav, sr=16000), abs=1e-12)
    assert vqscore.score(wav, 16000, model=bag, pooling="p10") == pytest.approx(
        np.mean([m.with_pooling("p10").vqscore(wav, sr=16000) for m in members_of(bag_file)]), abs=1e-12
    )
    paper = vqscore.score(wav, 16000, model=bag, conditioning="paper")
    assert paper == pytest.approx(
        np.mean([m.with_conditioning("paper").vqscore(wav, sr=16000) for m in members_of(bag_file)]), abs=1e-12
    )


def test_enhance_refuses_a_bag(bag_file):
    with pytest.raises(vqscore.BundleError, match="a bag of QE models scores; it cannot enhance"):
        vqscore.enhance(speech_like(1.0), 16000, model=str(bag_file))


def rows_by_path(path) -> dict[str, dict]:
    return {r["path"]: r for r in read_rows(path)}


@pytest.fixture
def score_folder(tmp_path):
    """Three speech-like files of different lengths (1.6 s is windowed by the small policy below) and one too short."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for k, seconds in enumerate((0.6, 1.0, 1.6)):
        sf.write(str(folder / f"{k}.wav"), speech_like(seconds, seed=20 + k, noise=0.05 * k), 16000)
    sf.write(str(folder / "short.wav"), np.zeros(40, dtype=np.float32), 16000)
    return folder


@pytest.mark.parametrize("policy", [[], ["--max-whole-s", "1.2", "--window-s", "0.5"]], ids=["whole", "windows"])
def test_cli_score_with_a_bag_is_the_mean_of_its_members(bag_file, score_folder, tmp_path, policy):
    """One decode per file feeds both members (corpus path); every column equals the mean of the members' own runs,
    windowed files included, and a failed file fails once, named."""
    out = tmp_path / "bag.csv"
    assert main(["score", str(score_folder), "--model", str(bag_file), "-o", str(out), *policy]) == 1  # short.wav fails
    got = rows_by_path(out)
    member_rows = []
    for seed in (0, 1):
        one = tmp_path / f"m{seed}.csv"
        main(
            [
                "score",
                str(score_folder),
                "--model",
                str(bag_file.parent / "models" / f"tiny-qe-{seed}.json"),
                "-o",
                str(one),
                *policy,
            ]
        )
        member_rows.append(rows_by_path(one))
    assert set(got) == set(member_rows[0])
    for path, row in got.items():
        if path.endswith("short.wav"):
            assert row["vqscore"] == "" and "too short" in row["error"] and row["error"].startswith(path)
            continue
        for column in ("vqscore", "l2_z"):
            expected = np.mean([float(m[path][column]) for m in member_rows])
            assert float(row[column]) == pytest.approx(expected, abs=2e-6)  # the table's 6 decimals
        assert (
            row["mos"] == "" and row["model"].startswith("tiny-bag[tiny-qe-0@0.0.1#") and "mean of 2 models" in row["scoring"]
        )
    assert float(got[str(score_folder / "0.wav")]["vqscore"]) != pytest.approx(
        float(member_rows[0][str(score_folder / "0.wav")]["vqscore"]), abs=1e-4
    )


def test_corpus_path_scores_several_networks_from_one_decode(bag_file, score_folder):
    from vqscore.corpus import score_paths_in_order

    members = members_of(bag_file)
    paths = [str(score_folder / f"{k}.wav") for k in range(3)]
    poolings = ["mean", "p10"]
    together = score_paths_in_order([m.network for m in members], paths, pooling=poolings, num_workers=0)
    alone = [score_paths_in_order(m.network, paths, pooling=p, num_workers=0) for m, p in zip(members, poolings, strict=True)]
    for k, r in enumerate(together):
        assert r.score.cos_z == pytest.approx((alone[0][k].score.cos_z + alone[1][k].score.cos_z) / 2, abs=1e-12)
        np.testing.assert_allclose(r.score.frames, (alone[0][k].score.frames + alone[1][k].score.frames) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="need one pooling per network: 2 networks, 1 poolings"):
        score_paths_in_order([m.network for m in members], paths, pooling=["mean"])
    se = tiny_network("se")
    with pytest.raises(ValueError, match="networks scored together must share their features"):
        score_paths_in_order([members[0].network, se], paths)


def test_bag_members_must_share_a_conditioning(bag_file, tmp_path):
    paper, other = members_of(bag_file)
    mixed = ModelBag([paper.with_conditioning("paper"), other.with_conditioning("robust")], "mixed")
    with pytest.raises(BagError, match=r"bag 'mixed': members differ in conditioning \(paper, robust\); give one"):
        _ = mixed.conditioning
    assert mixed.with_conditioning("robust").conditioning.name == "robust"


def test_distributed_scoring_refuses_a_bag(bag_file, tmp_path, capsys):
    code = main(["score", str(tmp_path), "--model", str(bag_file), "--distributed", "2", "-o", str(tmp_path / "x.csv")])
    assert code == 2
    assert f"--distributed scores with one model; {bag_file} is a bag" in capsys.readouterr().err


def test_filter_takes_a_bag(bag_file, score_folder, tmp_path):
    manifest = tmp_path / "kept.csv"
    assert main(["filter", str(score_folder), "--model", str(bag_file), "--keep-top", "50", "-o", str(manifest)]) == 0
    scores = rows_by_path(tmp_path / "kept.scores.csv")
    assert all(r["model"].startswith("tiny-bag[") for r in scores.values())
    kept = [r["path"] for r in read_rows(manifest, ("path", "vqscore", "kept", "reason")) if r["kept"] == "true"]
    best = max((p for p, r in scores.items() if r["vqscore"]), key=lambda p: float(scores[p]["vqscore"]))
    assert best in kept and len(kept) == 2  # ceil(50 % of the 3 scored files)
