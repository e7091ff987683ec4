"""Train the self-supervised enhancer (METHOD.md section 2).

    python -m recipes.se.train fit --config recipes/se/stage1.yaml      # clean-only VQ-VAE
    python -m recipes.se.train fit --config recipes/se/stage2.yaml      # self-distillation + adversarial training
    python -m recipes.se.train fit --config recipes/se/stage1.yaml --ckpt_path runs/se-stage1/csv/version_0/checkpoints/latest-step=N.ckpt

The stage is the LightningModule the config names (`model.class_path`).
"""

from lightning.pytorch.cli import LightningCLI

from recipes.se.data import EnhancementDataModule


def main(args=None) -> None:
    LightningCLI(
        datamodule_class=EnhancementDataModule,
        args=args,
        subclass_mode_model=True,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
