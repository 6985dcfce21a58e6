"""What is recorded at each launch, in the background so the training never waits for it: the
snapshot (git, packages, environment, hardware), the settings (config file and command-line
arguments) and the data mix, with their changes from the parent attempt as events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logbook.store import Store
    from logbook.supervisor import RunOptions
    from logbook.supervisor.recorder import Recorder


def start_capture(recorder: Recorder, command: list[str], env: Mapping[str, str], cwd: Path) -> Any:
    import threading

    def work() -> None:
        try:
            from logbook.capture import capture_launch

            rows = capture_launch(list(command), env, cwd)
        except Exception as e:  # capture promises not to raise; a bug there must not matter either
            recorder.warn(f"the launch snapshot failed: {e}")
            return
        recorder.snapshots(rows)

    t = threading.Thread(target=work, name="logbook-capture", daemon=True)
    t.start()
    return t


def start_settings(
    recorder: Recorder,
    store: Store,
    opts: RunOptions,
    command: list[str],
    parent_id: str | None,
) -> Any:
    """In the background: snapshot the config and command-line settings, and declare the data
    mix; their changes from the parent attempt are events."""
    import threading

    def work() -> None:
        if opts.gpu_price is not None:  # for `logbook cost`, over the price table
            price = {
                "kind": "cost",
                "name": "gpu_price_usd_per_hour",
                "value": f"{opts.gpu_price:g}",
            }
            recorder.snapshots([{**price, "status": "ok", "detail": "--gpu-price"}])
        record_hparams(recorder, store, opts.config_path, command, parent_id)
        if opts.data_mix_path is not None:
            record_data_mix(recorder, store, opts.data_mix_path, parent_id)

    t = threading.Thread(target=work, name="logbook-settings", daemon=True)
    t.start()
    return t


def record_data_mix(recorder: Recorder, store: Store, path: Path, parent_id: str | None) -> None:
    from logbook.record import datamix

    try:  # read again for each attempt: it may have been edited between restarts
        mix = datamix.with_fingerprints(datamix.load_mix(path), path.parent)
    except Exception as e:
        recorder.warn(f"could not record the data mix: {e}")
        return
    recorder.event("data_mix", datamix.summary(mix), data={"mix": mix, "file": str(path)})
    if parent_id is None:
        return
    try:
        old = datamix.last_recorded(store, recorder.run, {parent_id})
    except Exception as e:  # a damaged part: no diff this time, and say so
        recorder.warn(f"could not compare the data mix with the parent attempt: {e}")
        return
    change = datamix.change_data(old, mix) if old is not None else None
    if change is not None:
        recorder.event("data_mix_change", change[0], data=change[1])


def record_hparams(
    recorder: Recorder,
    store: Store,
    config_path: Path | None,
    command: list[str],
    parent_id: str | None,
) -> None:
    """Snapshot the config and command-line settings; their changes from the parent are events."""
    from logbook.record import hparams

    try:
        rows = hparams.snapshot_rows(config_path, command)
    except Exception as e:  # checked before the first launch; the file may have changed since
        recorder.warn(f"could not snapshot the settings: {e}")
        return
    recorder.snapshots(rows)
    if parent_id is None:
        return
    try:
        kinds = ("config", "arg")
        old_rows = store.read("snapshots", run=recorder.run).to_pylist()
        old = {
            f"{r['kind']}:{r['name']}": r["value"]
            for r in old_rows
            if r["attempt_id"] == parent_id and r["kind"] in kinds
        }
    except Exception as e:  # a damaged part: no diff this time, and say so
        recorder.warn(f"could not compare settings with the parent attempt: {e}")
        return
    new = {f"{r['kind']}:{r['name']}": r["value"] for r in rows if r["kind"] in kinds}
    for ch in hparams.changes(old, new):
        source, _, key = ch["key"].partition(":")
        message = f"{key}: {json.dumps(ch['old'])} -> {json.dumps(ch['new'])}"
        data = {
            "key": key,
            "old": ch["old"],
            "new": ch["new"],
            "source": "config" if source == "config" else "argv",
        }
        recorder.event("hparam_change", message, data=data)
