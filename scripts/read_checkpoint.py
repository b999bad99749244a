"""Print a Taper checkpoint's header and tensors with the Python `safetensors` package.

    pip install safetensors numpy
    python scripts/read_checkpoint.py out/mnist/checkpoint.safetensors

The names are documented in docs/CHECKPOINTS.md.
"""
import json
import sys

from safetensors import safe_open


def main(path: str) -> None:
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        for key in sorted(meta):
            value = meta[key]
            if key == "optim_scalars":
                value = json.dumps(json.loads(value), indent=None)[:200]
            print(f"{key}: {value}")
        for name in sorted(f.keys()):
            t = f.get_tensor(name)
            print(f"{name}: {t.dtype} {list(t.shape)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: read_checkpoint.py CHECKPOINT")
    main(sys.argv[1])
