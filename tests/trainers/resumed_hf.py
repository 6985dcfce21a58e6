"""A real Transformers Trainer on a tiny GPT-2 built from a config (no download), for
tests/test_resumed_trainers.py: 40 steps, a checkpoint-N folder every 10, an exported `final/`
model at the end; on its first launch it ends itself at step KILL_AT (kill -9, SIGTERM) or writes
MARKER and waits for the test's Ctrl-C; a relaunch resumes (`resume_from_checkpoint=True`).

    python resumed_hf.py OUT kill|term|int KILL_AT MARKER
"""

import os
import signal
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

out, how, kill_at, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
first = not (os.path.isdir(out) and any(n.startswith("checkpoint-") for n in os.listdir(out)))
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=8, n_layer=1, n_head=2))


class Tokens(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 32, (64, 8), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


class EndAt(TrainerCallback):
    # At the start of the step after KILL_AT: step KILL_AT's log line and the bar's redraw after
    # it are printed by then (at its end, the bar may not have been redrawn: tqdm's 0.1 s).
    def on_step_begin(self, args, state, control, **kw):
        time.sleep(0.05)
        if first and state.global_step == kill_at:
            if how == "int":
                open(marker, "w").close()
                time.sleep(60)
            os.kill(os.getpid(), {"kill": signal.SIGKILL, "term": signal.SIGTERM}[how])


args = TrainingArguments(
    output_dir=out,
    max_steps=40,
    save_steps=10,
    logging_steps=1,
    per_device_train_batch_size=4,
    report_to=[],
    disable_tqdm=False,
    use_cpu=True,
    seed=0,
    save_only_model=False,
)
trainer = Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[EndAt()])
trainer.train(resume_from_checkpoint=not first)
trainer.save_model(os.path.join(out, "final"))
print("done", flush=True)
