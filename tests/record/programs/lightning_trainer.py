"""A real Lightning Trainer on a tiny model and data, for the parser tests (#15).

    python lightning_trainer.py

Environment: BAR=rich (RichProgressBar; else TQDMProgressBar), NAN_AT (the training step from
which the loss is nan; 0: never), SLEEP (seconds each batch takes, so that bars redraw). Three
epochs of 10 batches, two validation batches after each, `train_loss` and `val_loss` on the bar.
"""

import os
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from torch import nn

NAN_AT = int(os.environ.get("NAN_AT", "0"))
SLEEP = float(os.environ.get("SLEEP", "0"))


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.calls = 0

    def training_step(self, batch: list[torch.Tensor], i: int) -> torch.Tensor:
        x, y = batch
        time.sleep(SLEEP)
        loss = nn.functional.mse_loss(self.lin(x).squeeze(-1), y)
        self.calls += 1
        if NAN_AT and self.calls >= NAN_AT:
            loss = loss * float("nan")
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], i: int) -> None:
        x, y = batch
        time.sleep(SLEEP)
        self.log("val_loss", nn.functional.mse_loss(self.lin(x).squeeze(-1), y), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(-1)), batch_size=4)
bar = RichProgressBar() if os.environ.get("BAR") == "rich" else TQDMProgressBar(refresh_rate=1)
pl.Trainer(
    max_epochs=3,
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
    limit_val_batches=2,
    callbacks=[bar],
).fit(Tiny(), data, data)
