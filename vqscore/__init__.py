"""vqscore: non-intrusive speech quality (VQScore) and self-supervised enhancement from VQ-VAEs trained on clean
speech only.

    import vqscore
    vqscore.score("speech.wav")          # float, higher is cleaner
    vqscore.load("default").score(wav, sr=48000)
    vqscore.enhance("noisy.wav")         # float32 (samples,) at 16 kHz, the shipped "default-se" enhancer
"""

from .api import Model, enhance, load, score
from .audio import AudioError
from .bundle import BundleError, save_bundle, shipped_bundles
from .official import OfficialCheckpointError
from .scoring import Score

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "BundleError",
    "Model",
    "OfficialCheckpointError",
    "Score",
    "__version__",
    "enhance",
    "load",
    "save_bundle",
    "score",
    "shipped_bundles",
]
