#!/usr/bin/env python3
"""Regenerate tests/corpus/manifest.tsv from the fetched corpus files.

Keeps the `file`, `kind` and `source` columns as they are and recomputes
`sha256`, `size`, `capture_time` and `offset` from the files under
$CARGO_TARGET_DIR/corpus/files (default <workspace>/target/corpus/files),
running exiftool once over all of them:

    exiftool -j -G3:1 -a -n -DateTimeOriginal -OffsetTimeOriginal \
             -CreateDate -DateCreated FILE...

To add a file: append a line with `-` in the computed columns, run
`scripts/fetch-corpus --no-verify-files`, then this script, then
`scripts/fetch-corpus` to check.

Capture time rule (what the product must do), applied to the main document
only (for HEIC that is the primary item; sub-documents `DocN:` are ignored):
  1. EXIF DateTimeOriginal (ExifIFD, else IFD0), with ExifIFD
     OffsetTimeOriginal when present.
  2. else a DateTimeOriginal that the container format itself carries
     (CanonRaw, SigmaRaw, H264 (AVCHD), RIFF (AVI), Matroska, ...), with the
     offset written in the value if any (`Z` = +00:00).
  3. else, for videos, QuickTime CreateDate (UTC, so offset +00:00).
  4. else XMP: exif:DateTimeOriginal, photoshop:DateCreated, xmp:CreateDate,
     keeping an offset if the value has one.
Notes on odd files (several different dates, non-EXIF sources, offsets) are
printed to stderr.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "tests" / "corpus" / "manifest.tsv"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve()
FILES = TARGET / "corpus" / "files"
HEADER = ["file", "sha256", "size", "kind", "capture_time", "offset", "source"]
VIDEO_KINDS = {"mp4", "mov", "m4v", "3gp", "mts", "avi", "mkv", "webm"}
EXIFTOOL_TAGS = ["-DateTimeOriginal", "-OffsetTimeOriginal", "-CreateDate", "-DateCreated"]

DATE_RE = re.compile(r"^(\d{4}):(\d\d):(\d\d) (\d\d):(\d\d):(\d\d)")
OFFSET_RE = re.compile(r"(Z|[+-]\d\d:\d\d)$")


def parse(value):
    """'YYYY:MM:DD HH:MM:SS[.fff][zone]' -> (datetime str, offset or '-')."""
    if not isinstance(value, str):
        return None
    m = DATE_RE.match(value.strip())
    if not m or m.group(1) == "0000":
        return None
    off = OFFSET_RE.search(value.strip())
    offset = "-"
    if off:
        offset = "+00:00" if off.group(1) == "Z" else off.group(1)
    return m.group(0), offset


def capture_time(kind, tags):
    """tags: {'Group:Tag': value} of the main document. Returns (time, offset, how)."""
    for group in ("ExifIFD", "IFD0"):
        p = parse(tags.get(f"{group}:DateTimeOriginal"))
        if p:
            off = tags.get("ExifIFD:OffsetTimeOriginal") or tags.get("IFD0:OffsetTimeOriginal")
            off = off if isinstance(off, str) and re.fullmatch(r"[+-]\d\d:\d\d", off) else "-"
            return p[0], off, f"{group}:DateTimeOriginal"
    for key, value in tags.items():
        group, tag = key.split(":", 1)
        if tag == "DateTimeOriginal" and not group.startswith(("XMP", "Composite", "QuickTime")):
            p = parse(value)
            if p:
                return p[0], p[1], key
    if kind in VIDEO_KINDS:
        p = parse(tags.get("QuickTime:CreateDate"))
        if p:
            return p[0], "+00:00", "QuickTime:CreateDate"
    for key in ("XMP-exif:DateTimeOriginal", "XMP-photoshop:DateCreated", "XMP-xmp:CreateDate"):
        p = parse(tags.get(key))
        if p:
            return p[0], p[1], key
    return "-", "-", None


def main():
    rows = []
    with open(MANIFEST, newline="") as f:
        lines = f.read().splitlines()
    if lines[0].split("\t") != HEADER:
        sys.exit(f"unexpected header in {MANIFEST}")
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(HEADER):
            sys.exit(f"{MANIFEST}:{n}: expected {len(HEADER)} columns")
        rows.append(dict(zip(HEADER, cols)))

    paths = [FILES / r["file"] for r in rows]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        sys.exit("missing (run scripts/fetch-corpus --no-verify-files):\n  " + "\n  ".join(missing))

    out = subprocess.run(
        ["exiftool", "-j", "-G3:1", "-a", "-n", *EXIFTOOL_TAGS, *map(str, paths)],
        check=False, capture_output=True, text=True,
    )
    if not out.stdout.strip():
        sys.exit(f"exiftool failed: {out.stderr}")
    by_path = {d["SourceFile"]: d for d in json.loads(out.stdout)}

    for row, path in zip(rows, paths):
        data = path.read_bytes()
        row["sha256"] = hashlib.sha256(data).hexdigest()
        row["size"] = str(len(data))
        d = by_path[str(path)]
        main_tags = {k: v for k, v in d.items() if k != "SourceFile" and not k.startswith("Doc")}
        t, off, how = capture_time(row["kind"], main_tags)
        row["capture_time"], row["offset"] = t, off

        notes = []
        dates = {k: v for k, v in d.items() if k != "SourceFile" and "Offset" not in k}
        dtos = {str(v)[:19] for k, v in dates.items() if k.endswith("DateTimeOriginal") and parse(v)}
        if len(dtos) > 1:
            notes.append("several DateTimeOriginal: " + ", ".join(
                f"{k}={v}" for k, v in dates.items() if k.endswith("DateTimeOriginal")))
        if any(k.startswith("Doc") for k in d):
            notes.append("sub-documents present (only main document used)")
        if how and not how.startswith(("ExifIFD", "IFD0")):
            notes.append(f"time from {how}")
        if off != "-":
            notes.append(f"offset {off}")
        else:
            zoned = [f"{k}={v}" for k, v in dates.items()
                     if k.split(":")[-2].startswith("XMP") and parse(v) and parse(v)[1] != "-"]
            if zoned:
                notes.append("no EXIF offset but XMP has one: " + ", ".join(zoned))
        if notes:
            print(f"{row['file']}: {t} {off} <- {how}; " + "; ".join(notes), file=sys.stderr)

    rows.sort(key=lambda r: r["file"])
    with open(MANIFEST, "w", newline="") as f:
        f.write("\t".join(HEADER) + "\n")
        for r in rows:
            f.write("\t".join(r[h] for h in HEADER) + "\n")
    print(f"wrote {MANIFEST} ({len(rows)} files)", file=sys.stderr)


if __name__ == "__main__":
    main()
