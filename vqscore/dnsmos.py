"""DNSMOS P.835 (Reddy et al., 2022), the supervised peer of VQScore, from the model files the `speechmos` package
ships (an optional extra: `pip install 'vqscore[eval]'`); used by the DNSMOS selector and the benchmarks.

Exactly speechmos's segmentation (9.01 s windows, 1 s hop, short input repeated) and polynomial mapping
(`speechmos.dnsmos.run`), minus the P.808 model, on one ONNX thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

RATE = 16_000
WINDOW_S = 9.01  # speechmos.dnsmos.INPUT_LENGTH


class Dnsmos:
    """`Dnsmos()(audio)` -> {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"} for audio: (samples,) float at 16 kHz."""

    def __init__(self):
        try:
            import onnxruntime as ort
            from speechmos import dnsmos
        except ImportError as exc:
            raise ImportError(f"DNSMOS needs the speechmos package ({exc}); pip install 'vqscore[eval]'") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        path = Path(dnsmos.__file__).parent / "dnsmos_models" / "sig_bak_ovr.onnx"
        self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        self.mapping = dnsmos.DNSMOS.get_polyfit_val

    def __call__(self, audio: np.ndarray) -> dict[str, float]:
        audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        window = int(WINDOW_S * RATE)
        while len(audio) < window:
            audio = np.append(audio, audio)
        hops = int(np.floor(len(audio) / RATE) - WINDOW_S) + 1
        sig, bak, ovrl = [], [], []
        for i in range(hops):
            segment = audio[int(i * RATE) : int((i + WINDOW_S) * RATE)]
            if len(segment) < window:
                continue
            raw = self.session.run(None, {"input_1": segment.astype(np.float32)[None, :]})[0][0]
            s, b, o = self.mapping(None, raw[0], raw[1], raw[2], False)
            sig.append(s)
            bak.append(b)
            ovrl.append(o)
        return {"dnsmos_sig": float(np.mean(sig)), "dnsmos_bak": float(np.mean(bak)), "dnsmos_ovrl": float(np.mean(ovrl))}
