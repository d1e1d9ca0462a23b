#!/usr/bin/env python3
"""A real labelled set for `compare` with task = "classify": Debian package synopses by section.

Reads `apt-cache dumpavail` (the machine's apt lists; run `apt-get update` first) and writes
train.jsonl and test.jsonl of {"id", "text", "label"}: the one-line `Description:` of packages
in six sections that a reader can tell apart from the text (games, sound, graphics, mail, math,
fonts), 60 training and 40 test synopses per section, drawn with a fixed seed. Package names are
left out of the text (they would give some sections away: `fonts-…`), and a synopsis that occurs
in more than one package is kept once, so no test text is also a training text.

    python3 bench/data/debian_sections.py OUT_DIR [--seed 0]
"""

import argparse
import json
import random
import re
import subprocess
from pathlib import Path

SECTIONS = ["games", "sound", "graphics", "mail", "math", "fonts"]
TRAIN, TEST = 60, 40


def synopses():
    dump = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    by_section = {s: {} for s in SECTIONS}
    for record in dump.split("\n\n"):
        section = re.search(r"^Section: (\S+)$", record, re.M)
        name = re.search(r"^Package: (\S+)$", record, re.M)
        text = re.search(r"^Description: (.+)$", record, re.M)
        if not (section and name and text) or section.group(1) not in by_section:
            continue
        by_section[section.group(1)].setdefault(text.group(1).strip(), name.group(1))
    return by_section


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seen = {}
    for section, texts in synopses().items():
        for text, name in texts.items():
            seen.setdefault(text, []).append((section, name))
    train, test = [], []
    for section in SECTIONS:
        own = sorted(t for t, owners in seen.items() if {s for s, _ in owners} == {section})
        if len(own) < TRAIN + TEST:
            raise SystemExit(f"section {section}: only {len(own)} distinct synopses, need {TRAIN + TEST}")
        picked = rng.sample(own, TRAIN + TEST)
        rows = [{"id": seen[t][0][1], "text": t, "label": section} for t in picked]
        train += rows[:TRAIN]
        test += rows[TRAIN:]
    rng.shuffle(train)
    rng.shuffle(test)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        with open(args.out / name, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(f"wrote {len(train)} training and {len(test)} test synopses to {args.out}")


if __name__ == "__main__":
    main()
