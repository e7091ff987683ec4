"""Train the VQScore (QE) model.

    python -m recipes.qe.train fit --config recipes/qe/base.yaml
    python -m recipes.qe.train fit --config recipes/qe/base.yaml --ckpt_path runs/qe/csv/version_0/checkpoints/latest-step=N.ckpt   # resume
"""

from lightning.pytorch.cli import LightningCLI

from recipes.common.data import CleanSpeechDataModule
from recipes.qe.module import QETrainingModule


def main(args=None) -> None:
    LightningCLI(QETrainingModule, CleanSpeechDataModule, args=args, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
