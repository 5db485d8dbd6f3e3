"""Cost of naming a local encoder checkpoint by the digest of its config and weights.

Writes a checkpoint folder of ``--mb`` MB of weights (random bytes; the digest does not parse
them) plus a config.json into a temporary folder, then times ``checkpoint_digest``:

- cold: the first time, every file read and hashed;
- cached: a new process (the in-process memo cleared), answered from the on-disk cache of
  per-file sha256 by path, size and modification time — what every later run and worker pays;
- memo: the same process again (what each ``EncoderSpec.name`` after the first costs).

Prints a table; the temporary folder and cache are removed afterwards.

    python benchmarks/encoder_digest.py            # 1200 MB (XLS-R 300M's model.safetensors)
    python benchmarks/encoder_digest.py --mb 200
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.metrics_speed import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1200, help="Size of the weights file in MB.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="addgp-digest-") as tmp:
        os.environ["ADDGP_CACHE_DIR"] = str(Path(tmp) / "cache")
        import tasks.embed.encoder as encoder

        folder = Path(tmp) / "ckpt"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
        chunk = os.urandom(1 << 20)
        with open(folder / "model.safetensors", "wb") as handle:
            for _ in range(args.mb):
                handle.write(chunk)
        old = time.time() - 10  # older than the racy window, as a downloaded checkpoint is
        for path in folder.iterdir():
            os.utime(path, (old, old))

        timings = {}
        start = time.perf_counter()
        digest = encoder.checkpoint_digest(folder)
        timings["cold (read and hash every file)"] = time.perf_counter() - start
        encoder._DIGESTS.clear()  # a new process: only the cache file is left
        start = time.perf_counter()
        assert encoder.checkpoint_digest(folder) == digest
        timings["cached (new process, on-disk cache)"] = time.perf_counter() - start
        start = time.perf_counter()
        assert encoder.checkpoint_digest(folder) == digest
        timings["memo (same process)"] = time.perf_counter() - start

    print(f"checkpoint of {args.mb} MB weights + config.json on {cpu_model()}")
    for what, seconds in timings.items():
        print(f"  {what:40s} {seconds * 1000:10.1f} ms")


if __name__ == "__main__":
    main()
