"""Folder walks (issue 8, item 4): symlinked folders are followed, each real folder once; unreadable folders and
files get an error row instead of vanishing; the CLI exits 1 then. The unreadable cases run the CLI as `nobody`."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import read_rows, score_command, tiny_network, write_speech

from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.walk import find_audio_files

EXT = frozenset({".wav", ".flac"})


def touch(path: Path) -> Path:
    """An empty file: the walk looks at names only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def found(*paths: Path | str) -> list[str]:
    return find_audio_files([str(p) for p in paths], EXT)


def strs(*paths: Path) -> list[str]:
    return [str(p) for p in paths]


# -- the walk itself


def test_symlinked_subfolder_is_followed(tmp_path):
    tree = tmp_path / "tree"
    touch(tree / "a.wav")
    touch(tmp_path / "elsewhere" / "spk" / "b.wav")
    touch(tmp_path / "elsewhere" / "spk" / "deeper" / "c.flac")
    (tree / "spk").symlink_to(tmp_path / "elsewhere" / "spk", target_is_directory=True)
    assert found(tree) == strs(tree / "a.wav", tree / "spk" / "b.wav", tree / "spk" / "deeper" / "c.flac")


def test_symlink_loops_end_and_list_each_file_once(tmp_path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    touch(tree / "x.wav")
    touch(tree / "sub" / "y.wav")
    (tree / "sub" / "up").symlink_to("..")  # to an ancestor inside the walked tree
    (tree / "sub" / "self").symlink_to(".")
    touch(outside / "o.wav")
    touch(outside / "inner" / "p.wav")
    (outside / "inner" / "back").symlink_to("..")  # a loop inside a followed folder
    (outside / "tree").symlink_to(tree)  # and back into the walked tree
    (tree / "out").symlink_to(outside)
    assert found(tree) == strs(
        tree / "x.wav", tree / "out" / "o.wav", tree / "out" / "inner" / "p.wav", tree / "sub" / "y.wav"
    )


def test_each_real_folder_is_listed_once(tmp_path):
    tree, shared = tmp_path / "tree", tmp_path / "shared"
    touch(shared / "s.wav")
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "link").symlink_to(shared)
    (tree / "b").symlink_to(shared)  # a second link to the same folder: not entered again
    touch(tree / "set1" / "x.wav")
    (tree / "all").symlink_to("set1")  # a link into the walked tree: its folder is listed under its own path
    expected = strs(tree / "a" / "link" / "s.wav", tree / "set1" / "x.wav")
    assert found(tree) == expected
    # the same folder named twice on the command line, through a link and directly: walked once, first name kept
    (tmp_path / "tree_link").symlink_to(tree)
    assert found(tmp_path / "tree_link", tree) == [p.replace(str(tree), str(tmp_path / "tree_link"), 1) for p in expected]
    assert found(tree / "set1", tree) == expected[::-1]  # a folder inside another named one: still once


def test_order_is_sorted_and_repeatable(tmp_path):
    tree = tmp_path / "tree"
    for name in ("z.wav", "B.wav", "a.wav", "z_real/1.wav", "c/2.wav"):  # created out of order
        touch(tree / name)
    touch(tmp_path / "o" / "3.wav")
    touch(tmp_path / "o" / "0.wav")
    (tree / "m_link").symlink_to(tmp_path / "o")
    expected = strs(
        *(tree / n for n in ("B.wav", "a.wav", "z.wav", "c/2.wav", "m_link/0.wav", "m_link/3.wav", "z_real/1.wav"))
    )
    assert found(tree) == expected
    assert found(tree) == expected


def test_only_audio_suffixes_are_taken_from_folders(tmp_path):
    tree = tmp_path / "tree"
    touch(tree / "notes.txt")
    touch(tmp_path / "o" / "x.WAV")  # suffixes match in any case
    touch(tmp_path / "o" / "readme.md")
    touch(tmp_path / "o" / "wav")
    (tmp_path / "o" / "take.wav").mkdir()  # a folder named like audio is walked, not listed
    touch(tmp_path / "o" / "take.wav" / "inner.flac")
    (tree / "link").symlink_to(tmp_path / "o")
    (tree / "gone.wav").symlink_to(tmp_path / "deleted.wav")  # broken link to audio: listed, the decoder says why
    (tree / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    assert found(tree) == strs(tree / "gone.wav", tree / "link" / "x.WAV", tree / "link" / "take.wav" / "inner.flac")


def test_files_named_explicitly_are_always_returned(tmp_path):
    tree = tmp_path / "tree"
    touch(tree / "a.wav")
    touch(tmp_path / "o" / "b.wav")
    touch(tmp_path / "o" / "c.wav")
    (tree / "spk").symlink_to(tmp_path / "o")
    notes = touch(tmp_path / "notes.txt")
    missing = tmp_path / "missing.wav"
    # named files come first, in the order named; a file named again by the walk keeps its first place
    assert found(notes, missing, tree / "spk" / "c.wav", tree, notes) == strs(
        notes, missing, tree / "spk" / "c.wav", tree / "a.wav", tree / "spk" / "b.wav"
    )


def test_unreadable_folder_is_listed_itself(tmp_path, monkeypatch):
    """As root nothing is unreadable, so the folder's listing is made to fail (the CLI test below does it for real)."""
    tree = tmp_path / "tree"
    touch(tree / "a.wav")
    touch(tree / "locked" / "hidden.wav")
    touch(tree / "z" / "b.wav")
    touch(tmp_path / "closed" / "c.wav")
    real_scandir = os.scandir
    blocked = {str(tree / "locked"), str(tmp_path / "closed")}

    def scandir(path="."):
        if os.fspath(path) in blocked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert found(tree, tmp_path / "closed") == strs(tree / "a.wav", tree / "locked", tree / "z" / "b.wav", tmp_path / "closed")


# -- through the command line


@pytest.fixture
def bundle(tmp_path, tiny_qe):
    return save_bundle(tiny_qe.network, tmp_path / "model", name="tiny-qe", version="0.0.1")


def test_cli_scores_files_in_symlinked_folders(tmp_path, bundle):
    tree = tmp_path / "tree"
    write_speech(tree / "a.wav", seed=1)
    write_speech(tmp_path / "elsewhere" / "b.wav", seed=2)
    write_speech(tmp_path / "elsewhere" / "c.flac", seed=3)
    (tree / "spk").symlink_to(tmp_path / "elsewhere")
    out = tmp_path / "scores.csv"
    assert main(["score", str(tree), "-o", str(out), "--model", str(bundle), "--workers", "0", "--threads", "1"]) == 0
    rows = read_rows(out)
    assert [r["path"] for r in rows] == strs(tree / "a.wav", tree / "spk" / "b.wav", tree / "spk" / "c.flac")
    assert all(r["error"] == "" and r["vqscore"] for r in rows)


def nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


def as_nobody(user: pwd.struct_passwd) -> list[str] | None:
    """The command prefix that runs a program as `nobody` with no supplementary groups, or None."""
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--"]
    return None


@pytest.fixture
def shared_dir():
    """A folder `nobody` can traverse (pytest's tmp_path is under a 0700 folder); made readable again and removed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as another user")
    user = nobody()
    if user is None:
        pytest.skip("no 'nobody' user")
    prefix = as_nobody(user)
    if prefix is None:
        pytest.skip("neither setpriv nor runuser is installed")
    top = Path(tempfile.mkdtemp(prefix="vqscore-walk-"))
    os.chmod(top, 0o755)
    try:
        yield top, prefix
    finally:
        for root, dirs, files in os.walk(top):  # top-down: each folder is opened before os.walk lists it
            for name in dirs + files:
                if not os.path.islink(os.path.join(root, name)):
                    os.chmod(os.path.join(root, name), 0o700)
        shutil.rmtree(top)


def test_cli_reports_unreadable_folders_and_files_as_nobody(shared_dir):
    top, prefix = shared_dir
    tree = top / "tree"
    good = [write_speech(tree / "a.wav", seed=1), write_speech(top / "elsewhere" / "b.wav", seed=2)]
    (tree / "link").symlink_to(top / "elsewhere")
    locked_file = write_speech(tree / "locked.wav", seed=3)
    locked_dir = tree / "locked_dir"
    write_speech(locked_dir / "hidden.wav", seed=4)
    os.chmod(locked_file, 0o000)
    os.chmod(locked_dir, 0o000)
    bundle = save_bundle(tiny_network("qe"), top / "model", name="tiny-qe", version="0.0.1")
    for part in (top / "model").iterdir():  # the weights file is written owner-only
        os.chmod(part, 0o644)
    results = top / "results"
    results.mkdir()
    os.chmod(results, 0o777)
    env = dict(os.environ, HOME=str(top), PYTHONDONTWRITEBYTECODE="1")
    # can nobody run this venv's python, and is a mode-000 file really closed to it (no capabilities kept)?
    check = (
        f"import vqscore; open({str(good[0])!r}, 'rb').close()\n"
        f"try:\n    open({str(locked_file)!r}, 'rb')\nexcept PermissionError:\n    pass\nelse:\n    raise SystemExit(3)\n"
    )
    probe = subprocess.run([*prefix, sys.executable, "-c", check], env=env, cwd=top, capture_output=True, text=True)
    if probe.returncode == 3:
        pytest.skip("nobody can read mode-000 files here")
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {sys.executable} with vqscore: {probe.stderr.strip()[-300:]}")

    out = results / "scores.csv"
    command = score_command(tree, out, bundle, "--workers", "0", "--threads", "1")
    run = subprocess.run([*prefix, *command], env=env, cwd=top, capture_output=True, text=True, timeout=300)
    assert out.is_file() and run.returncode == 1, run.stderr
    rows = {r["path"]: r for r in read_rows(out)}
    assert list(rows) == strs(tree / "a.wav", locked_file, tree / "link" / "b.wav", locked_dir)
    for path in (tree / "a.wav", tree / "link" / "b.wav"):
        assert rows[str(path)]["error"] == "" and rows[str(path)]["vqscore"]
    assert rows[str(locked_file)]["error"] == f"{locked_file}: cannot read file (Permission denied)"
    assert rows[str(locked_dir)]["error"] == f"{locked_dir}: cannot read folder (Permission denied)"
    assert rows[str(locked_dir)]["vqscore"] == ""
    assert "2 scored, 2 failed" in run.stderr
