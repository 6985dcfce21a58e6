"""A real Lightning Trainer on a tiny linear model, for tests/test_resumed_trainers.py: 30
steps, ModelCheckpoint every 10 steps with `save_last=True` (`epoch=0-step=N.ckpt`, `last.ckpt`);
on its first launch it ends itself at step KILL_AT (kill -9, SIGTERM) or writes MARKER and waits
for the test's Ctrl-C; a relaunch resumes with `ckpt_path="last"`.

    python resumed_lightning.py OUT kill|term|int KILL_AT MARKER
"""

import os
import signal
import sys
import time
import warnings

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

warnings.filterwarnings("ignore")
out, how, kill_at, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
first = not os.path.exists(os.path.join(out, "last.ckpt"))


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, i):
        time.sleep(0.15)
        if first and self.trainer.global_step == kill_at:
            if how == "int":
                open(marker, "w").close()
                time.sleep(60)
            os.kill(os.getpid(), {"kill": signal.SIGKILL, "term": signal.SIGTERM}[how])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(256, 4), torch.randn(256, 1))
loader = torch.utils.data.DataLoader(data, batch_size=4)
ckpt = ModelCheckpoint(dirpath=out, every_n_train_steps=10, save_last=True)
trainer = L.Trainer(
    max_steps=30,
    callbacks=[ckpt],
    logger=False,
    accelerator="cpu",
    devices=1,
    enable_model_summary=False,
    log_every_n_steps=1,
)
trainer.fit(Tiny(), loader, ckpt_path=None if first else "last")
print("done", flush=True)
