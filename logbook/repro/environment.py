"""Which recorded environment variables a recipe exports (#17).

The rule: a variable that may shape the training is exported; one that belongs to the machine,
the login session, the shell's tools or logbook is left out, and named. Two lists decide:

- `SHAPES_TRAINING`: the families the frameworks read (CUDA_, NCCL_, TORCH_, OMP_, HF_, ...,
  PYTHONHASHSEED): always exported.
- `NOT_TRAINING`: the terminal, the desktop, the shell, version and package managers, CI,
  experiment trackers, proxies and library paths of this machine: never exported.

A name on neither list is exported too: a training's own settings (`LR=3e-4`, `DATA_DIR`) have no
name anyone can list, and leaving them out would make the rerun a different training. Secrets are
never exported (the record holds `***`); the recipe asks for them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The frameworks' own switches: what a rerun must set as the original had them.
SHAPES_TRAINING_PREFIXES = (
    "CUDA_", "CUBLAS_", "CUDNN_", "NCCL_", "NVIDIA_", "NVTE_", "TORCH", "PYTORCH_", "OMP_",
    "MKL_", "KMP_", "OPENBLAS_", "GOMP_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "ACCELERATE_",
    "DEEPSPEED_", "PL_", "XLA_", "JAX_", "TF_", "HIP_", "HSA_", "ROCR_", "MIOPEN_", "FI_", "UCX_",
)  # fmt: skip
SHAPES_TRAINING_NAMES = frozenset(
    {"PYTHONHASHSEED", "PYTHONPATH", "PYTHONOPTIMIZE", "PYTHONWARNINGS", "PYTHONUTF8"}
    | {"PYTHONIOENCODING", "LANG", "LC_ALL", "LC_CTYPE"}
)

# The machine's and the session's, and what logbook sets for each attempt: exported elsewhere
# they mislead (LOGBOOK_ATTEMPT would file the rerun under the original; PATH, LD_LIBRARY_PATH
# and VIRTUAL_ENV point into this machine).
NOT_TRAINING_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "HOSTNAME"}
    | {"DISPLAY", "TMPDIR", "MAIL", "VIRTUAL_ENV", "COLUMNS", "LINES", "PS1", "PS2", "PS4"}
    | {"LS_COLORS", "LSCOLORS", "COLORTERM", "WINDOWID", "DBUS_SESSION_BUS_ADDRESS"}
    | {"EDITOR", "VISUAL", "PAGER", "LESS", "LESSOPEN", "LESSCLOSE", "MANPATH", "INFOPATH"}
    | {"TMUX", "TMUX_PANE", "STY", "WAYLAND_DISPLAY", "XAUTHORITY", "DESKTOP_SESSION"}
    | {"GPG_TTY", "GPG_AGENT_INFO", "MOTD_SHOWN", "PROMPT_COMMAND", "INVOCATION_ID"}
    | {"JOURNAL_STREAM", "SYSTEMD_EXEC_PID", "HISTFILE", "HISTSIZE", "HISTCONTROL"}
    | {"HOSTTYPE", "MACHTYPE", "OSTYPE", "LD_LIBRARY_PATH", "LD_PRELOAD", "LIBRARY_PATH"}
    | {"CPATH", "PKG_CONFIG_PATH", "JAVA_HOME", "GOPATH", "GOROOT", "CARGO_HOME", "RUSTUP_HOME"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE"}
    | {"CI", "CONTAINER_NAME"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"}
    | {"no_proxy", "all_proxy", "PYTHONSTARTUP", "PYTHONUNBUFFERED"}
)
NOT_TRAINING_PREFIXES = (
    "LOGBOOK_", "SSH_", "XDG_", "TERM_PROGRAM", "VSCODE_", "KITTY_", "ITERM_", "GNOME_", "KDE_",
    "SUDO_", "CONDA_", "MAMBA_", "PYENV_", "NVM_", "RBENV_", "SDKMAN_", "HOMEBREW_", "PIP_",
    "POETRY_", "PIPX_", "npm_", "GITHUB_", "GITLAB_", "RUNNER_", "BUILDKITE_", "JENKINS_",
    "WANDB_", "MLFLOW_", "COMET_", "NEPTUNE_", "BASH_FUNC_", "CLOUDSDK_", "CLOUD_SDK_",
)  # fmt: skip


def shapes_training(name: str) -> bool:
    """Whether a framework is known to read this variable."""
    return name in SHAPES_TRAINING_NAMES or name.startswith(SHAPES_TRAINING_PREFIXES)


def is_exported(name: str, names: Mapping[str, Any]) -> bool:
    """Whether a recipe exports this variable (`names`: every variable on record, for the
    launcher's, which come as a family: SLURM_*, or RANK beside MASTER_ADDR)."""
    from logbook.capture.launcher import is_launcher_variable

    if shapes_training(name):
        return not is_launcher_variable(name, names)
    if name in NOT_TRAINING_NAMES or name.startswith(NOT_TRAINING_PREFIXES):
        return False
    return not is_launcher_variable(name, names)
