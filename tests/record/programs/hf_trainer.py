"""A real Transformers Trainer on a tiny model and data (no downloads), for the parser tests (#15).

    python hf_trainer.py OUT_DIR

Environment: STEPS (default 30), NAN_AT (the training forward from which the loss is nan; 0:
never), NO_TQDM=1 (disable_tqdm: no progress bar). It logs every 5 steps, evaluates every 10,
and keeps NaN losses in its logs (logging_nan_inf_filter off).
"""

import os
import sys

import torch
from torch import nn
from transformers import Trainer, TrainingArguments

NAN_AT = int(os.environ.get("NAN_AT", "0"))


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.lin(x).squeeze(-1)
        loss = nn.functional.mse_loss(out, labels)
        if self.training:
            self.calls += 1
            if NAN_AT and self.calls >= NAN_AT:
                loss = loss * float("nan")
        return {"loss": loss, "logits": out}


class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.randn(4, generator=torch.Generator().manual_seed(i))
        return {"x": x, "labels": x.sum()}


args = TrainingArguments(
    output_dir=sys.argv[1],
    max_steps=int(os.environ.get("STEPS", "30")),
    per_device_train_batch_size=4,
    per_device_eval_batch_size=8,
    learning_rate=1e-2,
    logging_steps=5,
    eval_strategy="steps",
    eval_steps=10,
    logging_nan_inf_filter=False,
    save_strategy="no",
    report_to="none",
    disable_tqdm=os.environ.get("NO_TQDM") == "1",
    use_cpu=True,
    dataloader_num_workers=0,
)
Trainer(model=Tiny(), args=args, train_dataset=Data(), eval_dataset=Data()).train()
