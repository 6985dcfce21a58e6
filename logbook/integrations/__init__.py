"""Callbacks for training frameworks, recording through `logbook.Recorder`.

    from logbook.integrations.transformers import LogbookCallback   # Hugging Face Trainer
    from logbook.integrations.lightning import LogbookCallback      # PyTorch Lightning Trainer

Each module imports its framework and raises ImportError naming the package to install when it is
missing; this package itself imports nothing. The events they write (`checkpoint`, `train_start`,
`train_end`, `exception`) and their data keys are described in `logbook.integrations._common`.
"""
