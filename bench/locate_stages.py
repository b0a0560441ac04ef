#!/usr/bin/env python3
"""Time every stage of `subzero locate` on one model and print a Markdown table.

Runs the locate command into a fresh output folder (so no stage comes from the cache), reads the
per-stage wall times the command writes to OUT/timings.json and prints them with the machine,
the command and the date, ready to paste into docs/benchmarks.md. Heavy: run it under
`flock /tmp/subzero-heavy.lock` on a shared machine.

    python3 bench/locate_stages.py --build build --model gemma3-270m [--config configs/locate-quick.json]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build", help="CMake build folder that holds the subzero binary")
    parser.add_argument("--model", default="gemma3-270m", help="model path or short name")
    parser.add_argument("--config", help="locate config JSON (default: built-in defaults)")
    parser.add_argument("--out", help="output folder (default: a fresh temporary folder, removed afterwards)")
    args = parser.parse_args()

    binary = os.path.join(args.build, "subzero")
    out = args.out or tempfile.mkdtemp(prefix="locate-bench-")
    if args.out and os.path.exists(os.path.join(out, "stages")):
        sys.exit(f"{out}/stages exists; pass an empty --out so that no stage is read from the cache")
    command = [binary, "locate", args.model, "--out", out]
    if args.config:
        command += ["--config", args.config]
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    subprocess.run(command, check=True)
    wall = time.monotonic() - started
    load_after = os.getloadavg()[0]
    with open(os.path.join(out, "timings.json")) as f:
        timings = json.load(f)
    with open(os.path.join(out, "atlas.json")) as f:
        heldout = json.load(f).get("heldout_check")
    if not args.out:
        shutil.rmtree(out)

    total = sum(t["seconds"] for t in timings)
    print(f"Command: `{' '.join(command[:3])} --out OUT{' --config ' + args.config if args.config else ''}`  ")
    print(f"Machine: {os.cpu_count()} vCPU {cpu_name()}; load average {load_before:.1f} before, "
          f"{load_after:.1f} after. Date: {datetime.date.today().isoformat()}.\n")
    print("| stage | name | seconds | share | detail |")
    print("|---|---|---|---|---|")
    for t in timings:
        share = 100.0 * t["seconds"] / total if total > 0 else 0.0
        detail = t["detail"].replace("|", "/")
        print(f"| {t['stage']} | {t['name']} | {t['seconds']:.1f} | {share:.0f}% | {detail} |")
    print(f"| | **total (stages)** | **{total:.1f}** | | whole command incl. model load: {wall:.1f} s |")
    if heldout:
        print("\nHeld-out check: " + json.dumps(heldout))


if __name__ == "__main__":
    main()
