"""Train the U-Net spectrogram denoiser (METHOD.md section 5) on on-the-fly noisy mixtures.

    python -m recipes.unet.train fit --config recipes/unet/general.yaml                          # every condition
    python -m recipes.unet.train fit --config recipes/unet/general.yaml --config recipes/unet/noise-low.yaml
    python -m recipes.unet.train fit --config recipes/unet/general.yaml \\
        --ckpt_path runs/unet-general/csv/version_0/checkpoints/latest-step=N.ckpt             # resume

A specialist is general.yaml with a second config on top (its conditions, SNR band, run folder and bundle name).
"""

from lightning.pytorch.cli import LightningCLI

from recipes.unet.data import MixtureDataModule
from recipes.unet.module import UNetModule


def main(args=None) -> None:
    LightningCLI(UNetModule, MixtureDataModule, args=args, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
