"""Bundles: exact round trip, sha256-verified weights, clear refusals, conversion, and the shipped lookup."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from helpers import SR, speech_like, tiny_network

import vqscore
import vqscore.api
import vqscore.bundle
from vqscore import BundleError
from vqscore.bundle import find_shipped, load_bundle, read_info, save_bundle, shipped_bundles
from vqscore.cli import main


@pytest.mark.parametrize("which", ["tiny_qe", "tiny_se"])
def test_round_trip_is_exact(request, tmp_path, which):
    model = request.getfixturevalue(which)
    path = save_bundle(model.network, tmp_path / "out", name=f"tiny-{which}", version="0.3.1", training={"data": "noise"})
    assert path == tmp_path / "out" / f"tiny-{which}.json"
    network, info = load_bundle(path)
    assert not network.training
    assert info.kind == model.kind and info.name == f"tiny-{which}" and info.version == "0.3.1"
    assert info.training == {"data": "noise"}
    assert network.config == model.network.config
    assert network.features == model.network.features
    original = model.network.state_dict()
    loaded = network.state_dict()
    assert set(loaded) == set(original)
    for key, value in original.items():
        assert loaded[key].dtype == value.dtype, key
        assert torch.equal(loaded[key], value), key
    wavs = [speech_like(1.0, seed=1), speech_like(0.4, seed=2)]
    again = vqscore.load(path)
    assert again.name == f"tiny-{which}" and again.info.version == "0.3.1"
    for a, b in zip(model.score(wavs, sr=SR), again.score(wavs, sr=SR), strict=True):
        assert a.as_dict() == b.as_dict()
        np.testing.assert_array_equal(a.frames, b.frames)
    # the .safetensors path loads through the JSON beside it
    weights = info.weights_path
    assert vqscore.load(weights).score(wavs[0], sr=SR).cos_z == again.score(wavs[0], sr=SR).cos_z


def test_weights_name_carries_sha256(tiny_qe, tmp_path):
    path = save_bundle(tiny_qe.network, tmp_path, name="tq", version="1")
    info = json.loads(path.read_text())
    assert info["format"] == "vqscore-bundle" and info["format_version"] == 1
    digest = hashlib.sha256((tmp_path / info["weights"]).read_bytes()).hexdigest()
    assert info["sha256"] == digest
    assert info["weights"] == f"tq-{digest[:8]}.safetensors"
    assert info["model"]["kind"] == "qe" and info["model"]["codebook_size"] == 64
    assert info["features"]["hop_length"] == 256
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["tq.json", info["weights"]])  # no temp file left


def saved(model, tmp_path):
    path = save_bundle(model.network, tmp_path, name="tq", version="1")
    return path, read_info(path).weights_path


def test_flipped_byte_is_refused(tiny_qe, tmp_path):
    path, weights = saved(tiny_qe, tmp_path)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch") as info:
        vqscore.load(path)
    assert str(info.value).startswith(str(weights))


def test_truncated_weights_are_refused(tiny_qe, tmp_path):
    path, weights = saved(tiny_qe, tmp_path)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])
    with pytest.raises(BundleError, match=r"sha256 mismatch .*corrupt, truncated or were modified"):
        load_bundle(path)


def test_missing_weights_file(tiny_qe, tmp_path):
    path, weights = saved(tiny_qe, tmp_path)
    weights.unlink()
    with pytest.raises(BundleError, match=r"weights file .* is missing"):
        vqscore.load(path)


def test_json_that_is_not_a_bundle(tmp_path):
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(
        BundleError,
        match="^" + str(other).replace(".", r"\.") + r': not a vqscore-bundle JSON \(missing "format": "vqscore-bundle"\)$',
    ):
        vqscore.load(other)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(BundleError, match=r"garbage\.json: not a bundle JSON \("):
        vqscore.load(garbage)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(BundleError, match=r"list\.json: not a vqscore-bundle JSON"):
        vqscore.load(listing)
    with pytest.raises(BundleError, match=r"nothing\.json: no such bundle file"):
        vqscore.load(tmp_path / "nothing.json")


def test_incomplete_or_newer_bundle_json(tiny_qe, tmp_path):
    path, _ = saved(tiny_qe, tmp_path)
    info = json.loads(path.read_text())
    newer = dict(info, format_version=99)
    path.write_text(json.dumps(newer))
    with pytest.raises(BundleError, match=r"bundle format 99 is newer than this vqscore reads \(1\); upgrade vqscore"):
        vqscore.load(path)
    lacking = {k: v for k, v in info.items() if k != "sha256"}
    path.write_text(json.dumps(lacking))
    with pytest.raises(BundleError, match=r"bundle JSON lacks field 'sha256'"):
        vqscore.load(path)


def test_weights_that_do_not_fit_the_config(tiny_qe, tmp_path):
    path, _ = saved(tiny_qe, tmp_path)
    info = json.loads(path.read_text())
    info["model"]["codebook_size"] = 128
    path.write_text(json.dumps(info))
    with pytest.raises(BundleError, match=r"weights do not fit the model config"):
        vqscore.load(path)


def test_convert_official_checkpoint(reference_dir, tmp_path, capsys):
    out = tmp_path / "bundles"
    status = main(
        [
            "convert",
            str(reference_dir / "qe_seed0.pkl"),
            str(out),
            "--name",
            "qe-official",
            "--version",
            "2.0.0",
            "--data",
            "p232_005",
        ]
    )
    assert status == 0
    json_path = out / "qe-official.json"
    assert capsys.readouterr().out.strip() == str(json_path)
    info = read_info(json_path)
    assert (info.kind, info.version, info.training["data"]) == ("qe", "2.0.0", "p232_005")
    assert info.training["source"] == "official VQScore checkpoint qe_seed0.pkl"
    assert info.weights.startswith("qe-official-") and info.weights == f"qe-official-{info.sha256[:8]}.safetensors"

    from_pkl = vqscore.load(reference_dir / "qe_seed0.pkl")
    from_bundle = vqscore.load(json_path)
    for key, value in from_pkl.network.state_dict().items():
        assert torch.equal(from_bundle.network.state_dict()[key], value), key
    for name in ("noisy_p232_005.wav", "clean_p232_005.wav"):
        a = from_pkl.score(reference_dir / name)
        b = from_bundle.score(reference_dir / name)
        assert a.as_dict() == b.as_dict()
        np.testing.assert_array_equal(a.frames, b.frames)


def test_convert_bad_checkpoint_exits_2(tmp_path, capsys):
    bogus = tmp_path / "bogus.pkl"
    bogus.write_bytes(b"not a pickle at all")
    assert main(["convert", str(bogus), str(tmp_path / "out"), "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqscore convert: error: ") and "bogus.pkl: not a readable official VQScore checkpoint" in err
    assert not (tmp_path / "out" / "x.json").exists()


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    """An empty pretrained directory that is the only one searched."""
    directory = tmp_path / "pretrained"
    directory.mkdir()
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [directory])
    vqscore.api.cached_model.cache_clear()
    yield directory
    vqscore.api.cached_model.cache_clear()


def test_default_is_highest_qe_version(pretrained):
    qe, se = tiny_network("qe", seed=1), tiny_network("se", seed=2)
    for name, version in [("qe-a", "1.9.0"), ("qe-b", "1.10.0"), ("qe-c", "1.2.3"), ("qe-d", "0.99")]:
        save_bundle(qe, pretrained, name=name, version=version)
    save_bundle(se, pretrained, name="se-x", version="9.0.0")
    (pretrained / "notes.json").write_text('{"not": "a bundle"}')  # ignored

    bundles = shipped_bundles()
    assert [b.name for b in bundles] == ["qe-d", "qe-c", "qe-a", "qe-b", "se-x"]
    assert find_shipped("default").name == "qe-b"  # 1.10.0 > 1.9.0 (numeric, not string, order)
    assert find_shipped("se-x").kind == "se"
    with pytest.raises(BundleError, match=r"no shipped bundle named 'zzz' \(shipped: qe-d, qe-c, qe-a, qe-b, se-x\)"):
        find_shipped("zzz")

    model = vqscore.load("default")
    assert model.name == "qe-b" and model.kind == "qe" and model.info.version == "1.10.0"
    wav = speech_like(1.0)
    assert vqscore.score(wav, sr=SR) == vqscore_of(qe, wav)
    assert vqscore.load("se-x").kind == "se"


def vqscore_of(network, wav):
    return vqscore.Model(network, name="x").vqscore(wav, sr=SR)


def test_first_pretrained_directory_wins_on_equal_names(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    save_bundle(tiny_network("qe", seed=1), first, name="same", version="1.0")
    save_bundle(tiny_network("qe", seed=2), second, name="same", version="1.0")
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [first, second])
    bundles = shipped_bundles()
    assert len(bundles) == 1 and bundles[0].version == "1.0" and bundles[0].path.parent == first


def test_versions_of_one_name_side_by_side(pretrained):
    """A new version becomes what the name means; the old one stays loadable as NAME@VERSION."""
    old, new = tiny_network("qe", seed=1), tiny_network("qe", seed=2)
    save_bundle(old, pretrained, name="qe", version="1.0.0", json_name="qe-1.0.0.json")
    save_bundle(new, pretrained, name="qe", version="2.0.0", json_name="qe-2.0.0.json")
    assert [(b.name, b.version) for b in shipped_bundles()] == [("qe", "1.0.0"), ("qe", "2.0.0")]
    assert find_shipped("qe").version == "2.0.0" and find_shipped("default").version == "2.0.0"
    assert vqscore.load("qe@1.0.0").info.version == "1.0.0"
    wav = speech_like(1.0)
    assert vqscore.score(wav, sr=SR, model="qe@1.0.0") == vqscore_of(old, wav)
    assert vqscore.score(wav, sr=SR) == vqscore_of(new, wav)
    with pytest.raises(BundleError, match=r"no shipped bundle 'qe@3\.0' \(shipped: qe@1\.0\.0, qe@2\.0\.0\)"):
        find_shipped("qe@3.0")


def test_pretrained_dirs_reads_env(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv("VQSCORE_PRETRAINED", f"{a}:{tmp_path / 'absent'}:{b}")
    dirs = vqscore.bundle.pretrained_dirs()
    assert dirs[:2] == [a, b]  # the env's existing directories first, in order; missing ones dropped
    assert tmp_path / "absent" not in dirs


def test_version_order_puts_prerelease_before_release():
    from vqscore.bundle import version_key

    versions = ["1.0.0", "1.10.0", "1.0.0-rc1", "1.9.0", "0.2"]
    assert sorted(versions, key=version_key) == ["0.2", "1.0.0-rc1", "1.0.0", "1.9.0", "1.10.0"]


def test_saved_weights_are_as_readable_as_the_json(tmp_path):
    """safetensors writes owner-only files: another user could read a bundle's JSON but not its weights."""
    old = os.umask(0o022)
    try:
        json_path = save_bundle(tiny_network("qe"), tmp_path, name="perm", version="0.0.1")
    finally:
        os.umask(old)
    weights = next(tmp_path.glob("perm-*.safetensors"))
    assert weights.stat().st_mode & 0o777 == json_path.stat().st_mode & 0o777 == 0o644
