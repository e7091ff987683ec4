"""The U-Net spectrogram denoiser (`vqscore.models.unet`) as an enhancer. Recordings longer than `UNET_POLICY`'s
whole limit are enhanced in cross-faded windows (`vqscore.enhance_long.enhance_stream_with`, the SE model's
windowing): the U-Net's activations grow with the input's length (default widths: +100 MB peak for 20 s, measured on
CPU), while its receptive field is under a second, so windows change nothing but memory away from their seams."""

from __future__ import annotations

import numpy as np
import torch

from ..bundle import BundleInfo
from ..enhance_long import EnhancePolicy, enhance_stream_with, join
from ..models.unet import UNetDenoiser
from .checks import utterance

UNET_POLICY = EnhancePolicy(max_whole_s=20.0, window_s=20.0, overlap_s=1.0)


class UNetEnhancer:
    """wav: (samples,) float32 at 16 kHz, any length -> enhanced (samples,) float32 at 16 kHz."""

    def __init__(self, network: UNetDenoiser, info: BundleInfo, policy: EnhancePolicy = UNET_POLICY):
        self.network = network.eval()
        self.info = info
        self.policy = policy
        self.name = f"{info.name}@{info.version}"
        self.tag = f"{self.name}#{info.sha256[:12]}"
        self.weights_sha256 = info.sha256

    def enhance_whole(self, wav: np.ndarray) -> np.ndarray:
        """One utterance at once (no windows): (samples,) float32 at 16 kHz -> (samples,)."""
        return self.network.enhance(torch.from_numpy(wav)).cpu().numpy()

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        x = utterance(wav, self.name)
        hop = self.network.features.hop_length
        # min_samples 0: the network pads inputs shorter than its STFT window itself
        return join(list(enhance_stream_with(self.enhance_whole, [x], hop, 0, self.policy, self.name)))
