"""Read a Taper `--logdir` with TensorBoard's own readers and print every scalar and every run's
hyperparameters as JSON (what `crates/lab/tests/tensorboard.rs` compares with Taper's reader).

    pip install tensorboard tbparse
    python scripts/read_tensorboard.py out/logdir

Scalars come from `tbparse.SummaryReader` (TensorBoard's event_accumulator underneath), the
hyperparameters from TensorBoard's hparams plugin metadata parser.
"""
import json
import math
import os
import sys

from tbparse import SummaryReader
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata


def value(v):
    kind = v.WhichOneof("kind")
    return {"number_value": v.number_value, "string_value": v.string_value, "bool_value": v.bool_value}.get(kind)


def main(logdir: str) -> None:
    reader = SummaryReader(logdir, pivot=False, extra_columns={"dir_name"})
    scalars = []
    for row in reader.scalars.itertuples(index=False):
        x = float(row.value)
        scalars.append({"run": row.dir_name, "tag": row.tag, "step": int(row.step), "value": None if math.isnan(x) else x})
    hparams = {}
    for path, _, files in sorted(os.walk(logdir)):
        if not any("tfevents" in f for f in files):
            continue
        run = os.path.relpath(path, logdir)
        acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        try:
            content = acc.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
        except KeyError:
            content = {}
        for tag, raw in content.items():
            if tag == hparams_metadata.SESSION_START_INFO_TAG:
                info = hparams_metadata.parse_session_start_info_plugin_data(raw)
                hparams["" if run == "." else run] = {k: value(v) for k, v in info.hparams.items()}
    json.dump({"scalars": scalars, "hparams": hparams}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: read_tensorboard.py LOGDIR")
    main(sys.argv[1])
