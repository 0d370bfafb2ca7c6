"""``jaxdark restore``: restore dark RAW files (or folders of them) to images.

    jaxdark restore INPUT... --weights PATH --out-dir DIR [--m M ...]
                    [--amplification A] [--format png|png16|jpg|tiff]

Each input file gives one image per brightness value ``m`` (default 5, the value the
reference trained with), named after the file's stem (``IMG_1.ARW`` -> ``IMG_1.png``,
or ``IMG_1_m1.png``, ``IMG_1_m8.png`` ... for several ``--m`` values). A folder stands
for the RAW files directly in it (``--recursive`` for its subfolders too). Every file
is reported (size, camera, amplification, time); a file that fails is reported by name
and the batch goes on; the summary lists the failures and the exit status is 1 if any.
Images are written to a temporary file and renamed, so an output is never half-written.

The files go through a pipeline: ``--jobs`` threads read RAW files ahead, the device step
(`jaxdark.Restorer.submit`: normalisation, amplification, network and quantisation in one
compiled function) starts each file without waiting for the previous one, and ``--jobs``
threads wait for the images, encode and write them. Bounded windows join the stages
(about ``--jobs`` files in each), and the report lines come out in input order.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxdark.errors import JaxdarkError, one_line, printable_path
from jaxdark.fileio import IMAGE_FORMATS, check_writable_dir, write_image

DEFAULT_M = 5.0

# Extensions of the RAW formats LibRaw reads (matched case-insensitively in folders;
# files named explicitly are tried whatever their extension).
RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .bay .braw .cap .cr2 .cr3 .crw .cs1 .dcr .dcs .dng .drf .eip .erf .fff "
    ".gpr .iiq .k25 .kdc .mdc .mef .mos .mrw .nef .nrw .orf .pef .ptx .pxn .r3d .raf .raw "
    ".rw2 .rwl .rwz .sr2 .srf .srw .x3f".split()
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark restore``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="RAW files or folders")
    parser.add_argument(
        "--weights",
        required=True,
        help="official .pth, a directory written by 'jaxdark convert', or a training run's "
        "workdir or step directory",
    )
    parser.add_argument("--out-dir", required=True, help="folder for the restored images")
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="the network the weights must hold (a jaxdark.models name: lamba2021, "
        "sid_unet, did, sgn, llpacknet); default: whatever they record",
    )
    parser.add_argument(
        "--m",
        type=float,
        nargs="+",
        default=None,
        metavar="M",
        help=f"brightness of the estimated amplification; several give several outputs "
        f"(default {DEFAULT_M:g})",
    )
    parser.add_argument(
        "--amplification",
        type=float,
        default=None,
        metavar="A",
        help="use this fixed factor instead of estimating one (excludes --m)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(IMAGE_FORMATS),
        default="png",
        help="png (8-bit, default), png16, jpg (8-bit) or tiff (16-bit)",
    )
    parser.add_argument(
        "--recursive", action="store_true", help="also look for RAW files in subfolders"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace images left in --out-dir by a past run"
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep images already in --out-dir and restore only the missing ones (resume)",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=None,
        metavar="N",
        help="restore in N x N tiles (multiple of 32) to bound memory on huge frames",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=128,
        metavar="N",
        help="context around each tile, a multiple of 32 (default 128)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        metavar="N",
        help="threads reading RAW files and threads encoding/writing images (default 2); "
        "the device restores one file while others are read and written",
    )
    add_io_nice_argument(parser)
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="float32 (default) or bfloat16 multiplies (meant for GPUs and TPUs; "
        "accumulation and output stay float32)",
    )


def add_io_nice_argument(parser: argparse.ArgumentParser) -> None:
    """``--io-nice N``: the niceness added to reading and encoding threads."""
    parser.add_argument(
        "--io-nice",
        type=int,
        default=None,
        metavar="N",
        help="niceness added to the reading and encoding threads, 0 to 19 (default 19 when "
        "the network runs on the CPU, so they use its idle time instead of slowing it; "
        "0 on a GPU/TPU; Linux only)",
    )


# --------------------------------------------------------------------------- inputs


def find_inputs(
    inputs: Sequence[str | os.PathLike], recursive: bool = False
) -> tuple[list[Path], list[str]]:
    """Files named directly, plus RAW files found in named folders (sorted, no repeats),
    and one line per folder that could not be read (the batch goes on without it).

    An input that does not exist is kept as a file: reading it then fails with a
    one-line error and the batch goes on past it (its summary lists it). Raises
    ValueError if nothing was found and nothing could be reported.
    """
    found: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def note(error: OSError) -> None:
        problems.append(one_line(error, error.filename or "?"))

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files: list[Path] = []
            if recursive:
                for root, dirs, names in os.walk(p, onerror=note):
                    dirs.sort()
                    files += [Path(root) / n for n in names]
            else:
                try:
                    files = [f for f in p.iterdir() if f.is_file()]
                except OSError as e:
                    note(e)
            files = sorted(f for f in files if f.suffix.lower() in RAW_EXTENSIONS)
        else:
            files = [p]
        for f in files:
            key = f.absolute() if not f.exists() else f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    if not found and not problems:
        where = ", ".join(printable_path(i) for i in inputs)
        raise ValueError(f"no RAW files found in {where} (extensions: .dng, .arw, .nef, ...)")
    return found, problems


def output_stems(paths: Sequence[Path]) -> list[str]:
    """A distinct output stem per input: its stem, then stem_ext, then stem-2, ... on clashes."""
    stems = [p.stem for p in paths]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    out: list[str] = []
    used: set[str] = set()
    for p, s in zip(paths, stems, strict=True):
        name = s if counts[s.lower()] == 1 else f"{s}_{p.suffix.lstrip('.')}" if p.suffix else s
        base, k = name, 2
        while name.lower() in used:
            name = f"{base}-{k}"
            k += 1
        used.add(name.lower())
        out.append(name)
    return out


def output_name(stem: str, m: float | None, several: bool, fmt: str) -> str:
    """File name of one output: ``stem.png`` or, for several m values, ``stem_m5.png``."""
    suffix = f"_m{m:g}" if several and m is not None else ""
    return f"{stem}{suffix}{IMAGE_FORMATS[fmt]}"


Target = tuple[float | None, Path]  # (m, or None for a fixed amplification; output file)


def plan_outputs(
    paths: Sequence[Path],
    out_dir: Path,
    ms: Sequence[float],
    amplification: float | None,
    fmt: str,
) -> list[list[Target]]:
    """The output files of every input, checked before anything is restored: no two
    outputs of the run share a name and no output is one of the inputs (ValueError)."""
    values: list[float | None] = [None] if amplification is not None else list(ms)
    several = len(values) > 1
    plan = [
        [(m, out_dir / output_name(stem, m, several, fmt)) for m in values]
        for stem in output_stems(paths)
    ]
    names: dict[str, Path] = {}
    for path, targets in zip(paths, plan, strict=True):
        for _, out in targets:
            key = out.name.lower()
            if key in names:
                raise ValueError(
                    f"{printable_path(names[key])} and {printable_path(path)} would both be "
                    f"written to {printable_path(out)}"
                )
            names[key] = path
    inputs = {p.resolve() for p in paths if p.exists()}
    for path, targets in zip(paths, plan, strict=True):
        for _, out in targets:
            if out.exists() and out.resolve() in inputs:
                raise ValueError(
                    f"{printable_path(out)}: the output of {printable_path(path)} would replace "
                    "an input; choose another --out-dir or --format"
                )
    return plan


# --------------------------------------------------------------------------- restoring


@dataclass
class FileResult:
    """What happened to one input."""

    path: Path
    outputs: list[Path]
    error: str | None = None
    report: str = ""


# what the device hands back for each format: only the final integers come to the host
FORMAT_OUTPUT = {"png": "uint8", "jpg": "uint8", "png16": "uint16", "tiff": "uint16"}


@dataclass
class FileJob:
    """One input between the pipeline's stages: read, submitted to the device, or failed."""

    path: Path
    start: float
    raw: Any = None  # jaxdark.imaging.raw.RawCounts once read
    error: str | None = None
    submitted: list[tuple[float | None, Path, Any, str]] = field(default_factory=list)
    skipped: bool = False


def _fail(path: Path, e: BaseException) -> str:
    if isinstance(e, JaxdarkError | ValueError | OSError):
        return one_line(e, path)
    # e.g. out of memory in XLA: report it, keep the batch going
    return one_line(RuntimeError(f"{type(e).__name__}: {one_line(e)}"), path)


def read_file(path: Path) -> FileJob:
    """Stage 1 (a reader thread): the file's raw counts, or its one-line error."""
    from jaxdark.imaging.raw import read_raw_counts

    job = FileJob(path, time.perf_counter())
    try:
        job.raw = read_raw_counts(path)
    except Exception as e:  # noqa: BLE001 - every failure is the file's one-line report
        job.error = _fail(path, e)
    return job


def submit_file(
    restorer,
    job: FileJob,
    targets: Sequence[Target],
    amplification: float | None,
    fmt: str,
    overwrite: bool = False,
) -> FileJob:
    """Stage 2 (the device step, one thread): start one restoration per target; it
    returns before the device is done. Without ``overwrite`` an output that appeared
    since the run was planned fails the file instead of being replaced."""
    if job.error is not None:
        return job
    raw = job.raw
    try:
        for m, out in targets:
            if out.exists() and not overwrite:
                raise FileExistsError(f"{printable_path(out)} exists (use --overwrite)")
            compiled = len(restorer.compiled_shapes)
            pending = restorer.submit(
                raw.counts,
                amplification,
                DEFAULT_M if m is None else m,
                raw.pattern,
                black_levels=raw.black_levels,
                white_level=raw.white_level,
                out=FORMAT_OUTPUT[fmt],
            )
            note = " incl. compile" if len(restorer.compiled_shapes) > compiled else ""
            job.submitted.append((m, out, pending, note))
    except Exception as e:  # noqa: BLE001
        job.error = _fail(job.path, e)
    return job


def _constant_warning(raw) -> str:
    """The warning of a frame whose normalised pixels all have one value."""
    lo, hi = int(raw.counts.min()), int(raw.counts.max())
    blacks = raw.black_levels
    if hi <= min(blacks) or (lo == hi and len(set(blacks)) == 1):
        return (
            " WARNING: every pixel has the same value (an all-black frame, or float "
            "data LibRaw decodes as zeros, e.g. with NaN pixels);"
        )
    return ""


def finish_file(job: FileJob, fmt: str, overwrite: bool = False) -> FileResult:
    """Stage 3 (a writer thread): wait for the images, write them atomically, report."""
    outputs: list[Path] = []
    name = printable_path(job.path)
    try:
        if job.error is not None:
            raise _Reported(job.error)
        parts = []
        for m, out, pending, note in job.submitted:
            r = pending.result()
            if out.exists() and not overwrite:
                raise FileExistsError(f"{printable_path(out)} exists (use --overwrite)")
            write_image(out, r.image, fmt, replace=overwrite)  # exclusive unless asked
            outputs.append(out)
            what = f"x{r.amplification:.4g}" + ("" if m is None else f" (m={m:g})")
            parts.append(f"{what} {r.seconds:.3g}s{note} -> {printable_path(out.name)}")
        raw = job.raw
        h, w = raw.shape
        report = (
            f"{name}: {w}x{h} {raw.pattern}, {raw.camera};{_constant_warning(raw)} "
            + "; ".join(parts)
            + f"; {time.perf_counter() - job.start:.3g}s in all"
        )
        return FileResult(job.path, outputs, None, report)
    except _Reported as e:
        return FileResult(job.path, outputs, str(e), str(e))
    except Exception as e:  # noqa: BLE001
        msg = _fail(job.path, e)
        return FileResult(job.path, outputs, msg, msg)
    finally:
        job.raw = None
        job.submitted = []


class _Reported(Exception):
    """A failure already turned into its one-line report."""


def restore_one(
    restorer,
    path: Path,
    targets: Sequence[Target],
    amplification: float | None,
    fmt: str,
    overwrite: bool = False,
) -> FileResult:
    """Read, restore and write one file, the pipeline's three stages in turn; errors a
    user can fix become ``FileResult.error``."""
    job = submit_file(restorer, read_file(path), targets, amplification, fmt, overwrite)
    return finish_file(job, fmt, overwrite)


def _validate(args: argparse.Namespace) -> list[float]:
    from jaxdark.imaging.amplifier import check_m
    from jaxdark.restorer import check_amplification
    from jaxdark.streaming import io_nice

    if args.amplification is not None and args.m is not None:
        raise ValueError("give --m or --amplification, not both")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    args.io_nice = io_nice(args.io_nice, "--io-nice")  # resolved once, for every stage
    if args.overwrite and args.skip_existing:
        raise ValueError("give --overwrite or --skip-existing, not both")
    if args.amplification is not None:
        args.amplification = check_amplification(args.amplification)
    ms = [DEFAULT_M] if args.m is None else list(dict.fromkeys(args.m))
    suffixes: dict[str, float] = {}
    for m in ms:
        check_m(m)
        if f"{m:g}" in suffixes:
            raise ValueError(
                f"--m {suffixes[f'{m:g}']:.10g} and {m:.10g} would share the file name suffix "
                f"_m{m:g}; give values that differ in their first 6 digits"
            )
        suffixes[f"{m:g}"] = m
    return ms


def load_weights(weights: str, model_name: str | None = None):
    """The network behind ``--weights`` (`jaxdark.load_model`), checked to be ``--model``."""
    from jaxdark.models import get, name_of
    from jaxdark.weights.load import load_model

    if model_name is not None:
        get(model_name)  # an unknown name fails before the weights are read
    model = load_model(weights)
    if model_name is not None and name_of(model) != model_name:
        raise ValueError(
            f"--weights {printable_path(weights)} hold a {name_of(model)} network, not {model_name}"
        )
    return model


def _existing(plan: list[list[Target]]) -> list[Path]:
    return [out for targets in plan for _, out in targets if out.exists()]


def run(args: argparse.Namespace) -> int:
    """Restore every input; 0 if all succeeded, 1 if any failed."""
    from tqdm import tqdm

    from jaxdark.restorer import Restorer
    from jaxdark.streaming import read_ahead, worker_pool

    ms = _validate(args)
    nice = args.io_nice
    paths, problems = find_inputs(args.inputs, args.recursive)
    out_dir = Path(args.out_dir)
    check_writable_dir(out_dir, "--out-dir")
    plan = plan_outputs(paths, out_dir, ms, args.amplification, args.format)
    existing = _existing(plan)
    if existing and not (args.overwrite or args.skip_existing):
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ValueError(
            f"{printable_path(existing[0])} exists{more}; pass --overwrite to replace, or "
            "--skip-existing to keep them and restore only the rest"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    restorer = Restorer(
        load_weights(args.weights, args.model),
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
        dtype=args.dtype,
    )

    results: list[FileResult] = [FileResult(Path("?"), [], p, p) for p in problems]
    for line in problems:
        print(f"FAILED {line}", file=sys.stderr)
    skipped = 0
    bar = tqdm(
        total=len(paths), unit="file", desc="restore", disable=len(paths) < 2, file=sys.stderr
    )
    todo: list[tuple[Path, list[Target]]] = []
    for path, targets in zip(paths, plan, strict=True):
        if args.skip_existing:
            targets = [(m, out) for m, out in targets if not out.exists()]
        todo.append((path, targets))

    def read(item: tuple[Path, list[Target]]) -> FileJob:
        path, targets = item
        if not targets:  # --skip-existing and every output exists
            return FileJob(path, time.perf_counter(), skipped=True)
        return read_file(path)

    def report(result: FileResult | None, path: Path) -> None:
        nonlocal skipped
        if result is None:
            skipped += 1
            tqdm.write(f"{printable_path(path)}: skipped, its outputs exist", file=sys.stdout)
        else:
            results.append(result)
            tqdm.write(
                ("FAILED " if result.error else "") + result.report,
                file=sys.stderr if result.error else sys.stdout,
            )
        bar.update(1)

    # read (pool) -> device (this thread, asynchronous) -> wait, encode, write (pool),
    # joined by bounded windows; reports are printed in input order
    jobs = args.jobs
    with worker_pool(jobs, "jaxdark-write", nice) as writers:
        window: deque[tuple[Path, Future | None]] = deque()
        for (path, targets), future in read_ahead(todo, read, jobs, jobs + 1, nice):
            job = future.result()
            if job.skipped:
                window.append((path, None))
            else:
                job = submit_file(
                    restorer, job, targets, args.amplification, args.format, args.overwrite
                )
                window.append((path, writers.submit(finish_file, job, args.format, args.overwrite)))
            while len(window) > jobs:
                done_path, done = window.popleft()
                report(None if done is None else done.result(), done_path)
        while window:
            done_path, done = window.popleft()
            report(None if done is None else done.result(), done_path)
    bar.close()

    failed = [r for r in results if r.error]
    written = sum(len(r.outputs) for r in results)
    print(
        f"restored {len(results) - len(failed)} of {len(results) + skipped} file(s), "
        f"{written} image(s) in {printable_path(out_dir)}"
        + (f"; {skipped} skipped (outputs exist)" if skipped else "")
    )
    if failed:
        print(f"{len(failed)} file(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.error}", file=sys.stderr)
        return 1
    return 0
