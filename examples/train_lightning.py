"""A tiny PyTorch Lightning training on CPU, recorded by logbook's Lightning callback.

Linear regression on random tensors; it logs train_loss every --log-every steps, checkpoints every
--ckpt-every steps into --out, resumes from the last checkpoint there, and fails on purpose at
--crash-at N in its first launch (LOGBOOK_RESTART_COUNT unset or 0):

    pip install torch lightning   (torch: the build for your CUDA, or the CPU one)
    logbook run --run lit -- python examples/train_lightning.py
    logbook run --run lit --restarts 1 -- python examples/train_lightning.py --crash-at 30
    logbook events lit
"""

from __future__ import annotations

import argparse
import os

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from logbook.integrations.lightning import LogbookCallback


class Regression(pl.LightningModule):
    def __init__(self, dim: int = 8, lr: float = 0.05, crash_at: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()  # recorded by the callback as config rows
        self.layer = torch.nn.Linear(dim, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step == self.hparams.crash_at:
            raise RuntimeError(f"failing on purpose at step {self.global_step}")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=5)
    ap.add_argument("--ckpt-every", type=int, default=20)
    ap.add_argument("--crash-at", type=int, default=None)
    ap.add_argument("--out", default="lightning-example")
    args = ap.parse_args()
    crash_at = args.crash_at if os.environ.get("LOGBOOK_RESTART_COUNT", "0") == "0" else None

    pl.seed_everything(0)
    x = torch.randn(512, 8)
    y = x @ torch.linspace(-1, 1, 8) + 0.1 * torch.randn(512)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    ckpt = ModelCheckpoint(
        dirpath=os.path.join(args.out, "checkpoints"),
        every_n_train_steps=args.ckpt_every,
        save_top_k=-1,
        save_last=True,
    )
    trainer = pl.Trainer(
        max_steps=args.max_steps,
        accelerator="cpu",
        logger=CSVLogger(args.out),
        log_every_n_steps=args.log_every,
        callbacks=[ckpt, LogbookCallback()],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    last = os.path.join(args.out, "checkpoints", "last.ckpt")
    trainer.fit(
        Regression(crash_at=crash_at), data, ckpt_path=last if os.path.exists(last) else None
    )


if __name__ == "__main__":
    main()
