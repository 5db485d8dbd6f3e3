"""Start-up and exit cost of the `addgp` command: import time per verb, scoring many files one
command each versus one `addgp score --list -` session, and (``--run-config``) how long
`addgp run` takes to exit after its last line on Prefect's temporary server.

Runs the CLI of the source tree ``--repo`` (default: this one) as subprocesses, so a second
checkout (e.g. main) gives the "before" numbers on the same machine in the same minutes.

    python benchmarks/cli_startup.py --model runs/demo/models/logreg --audio runs/demo/corpus/demo_studio --files 8
    python benchmarks/cli_startup.py ... --repo /path/to/other/checkout   # the same, for another tree
    python benchmarks/cli_startup.py --run-config tiny.yaml [--repo …]       # exit after the last line only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "sklearn", "prefect", "distributed", "dask", "pandas")


def cli(repo: Path, args: list[str], stdin: str | None = None, importtime: bool = False) -> tuple[float, str]:
    """Wall seconds of `python [-X importtime] -m flows.cli ARGS` in ``repo``, and its stderr."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "flows.cli", *args]
    start = time.perf_counter()
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo)}, timeout=900
    )
    return time.perf_counter() - start, done.stderr


def import_profile(stderr: str) -> dict:
    """Seconds of imports (the top-level entries of -X importtime) and which heavy packages were loaded."""
    total_us, loaded = 0, set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):  # one space: imported by the command itself
            total_us += int(cumulative)
        if name.strip() in HEAVY:
            loaded.add(name.strip())
    return {"import_s": round(total_us / 1e6, 2), "heavy": sorted(loaded)}


def exit_after_last_line(repo: Path, config: str) -> dict:
    """`addgp run CONFIG` without PREFECT_API_URL: seconds from its last output line to its exit."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", config],
        env={**env, "PYTHONPATH": str(repo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, last = [], start
    for line in process.stdout:
        lines.append(line)
        last = time.perf_counter()
    code = process.wait()
    return {
        "repo": str(repo),
        "command": f"addgp run {config}",
        "exit_code": code,
        "total_s": round(time.perf_counter() - start, 1),
        "seconds_after_last_line": round(time.perf_counter() - last, 1),
        "error_logging_to_api": any("Error logging to API" in line for line in lines),
        "lines": len(lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="A registered model (MODELS/NAME or MODELS/NAME/vN).")
    parser.add_argument("--audio", help="A folder of audio files to score.")
    parser.add_argument("--run-config", help="Only time `addgp run CONFIG`'s exit after its last line.")
    parser.add_argument("--files", type=int, default=8, help="How many files to score.")
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="Source tree to run.")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    if args.run_config:
        print(json.dumps(exit_after_last_line(repo, args.run_config)))
        return
    if not (args.model and args.audio):
        parser.error("--model and --audio are needed (or --run-config)")
    files = sorted(str(p) for p in Path(args.audio).rglob("*.flac"))[: args.files]
    with tempfile.TemporaryDirectory() as folder:
        scores = Path(folder, "scores.csv")
        scores.write_text(
            "score,label\n" + "".join(f"{i / 10},{'bonafide' if i % 2 else 'spoof'}\n" for i in range(40))
        )
        for name, verb in {
            "addgp --help": ["--help"],
            "addgp metrics SCORES": ["metrics", str(scores)],
            "addgp score FILE": ["score", files[0], "--model", args.model],
        }.items():
            seconds, stderr = cli(repo, verb, importtime=True)
            print(
                json.dumps({"repo": str(repo), "command": name, "wall_s": round(seconds, 2), **import_profile(stderr)})
            )
    one_each = sum(cli(repo, ["score", f, "--model", args.model])[0] for f in files)
    print(json.dumps({"repo": str(repo), "files": len(files), "one addgp score per file, total_s": round(one_each, 1)}))
    together, _ = cli(repo, ["score", *files, "--model", args.model])
    print(json.dumps({"repo": str(repo), "files": len(files), "one addgp score FILE..., total_s": round(together, 1)}))
    listed = cli(repo, ["score", "--list", "-", "--model", args.model], stdin="\n".join(files) + "\n")
    if "No such option: --list" not in listed[1]:
        print(
            json.dumps(
                {"repo": str(repo), "files": len(files), "one addgp score --list -, total_s": round(listed[0], 1)}
            )
        )


if __name__ == "__main__":
    main()
