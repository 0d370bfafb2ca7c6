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
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="float32 (default) or bfloat16 multiplies (meant for GPUs and TPUs; "
        "accumulation and output stay float32)",
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


def restore_one(
    restorer,
    path: Path,
    targets: Sequence[Target],
    amplification: float | None,
    fmt: str,
    overwrite: bool = False,
) -> FileResult:
    """Read, restore and write one file; errors a user can fix become ``FileResult.error``.

    Without ``overwrite`` an output that appeared since the run was planned is not
    replaced (the file fails instead)."""
    from jaxdark.imaging.raw import read_raw

    start = time.perf_counter()
    outputs: list[Path] = []
    name = printable_path(path)
    try:
        frame = read_raw(path)
        h, w = frame.shape
        parts = []
        for m, out in targets:
            if out.exists() and not overwrite:
                raise FileExistsError(f"{printable_path(out)} exists (use --overwrite)")
            compiled = len(restorer.compiled_shapes)
            r = restorer.restore_frame(frame, amplification, DEFAULT_M if m is None else m)
            write_image(out, r.image, fmt)
            outputs.append(out)
            note = " incl. compile" if len(restorer.compiled_shapes) > compiled else ""
            what = f"x{r.amplification:.4g}" + ("" if m is None else f" (m={m:g})")
            parts.append(f"{what} {r.seconds:.3g}s{note} -> {printable_path(out.name)}")
        total = time.perf_counter() - start
        warning = ""
        if float(frame.mosaic.max()) == float(frame.mosaic.min()):
            warning = (
                " WARNING: every pixel has the same value (an all-black frame, or float "
                "data LibRaw decodes as zeros, e.g. with NaN pixels);"
            )
        report = (
            f"{name}: {w}x{h} {frame.pattern}, {frame.camera};{warning} "
            + "; ".join(parts)
            + f"; {total:.3g}s in all"
        )
        return FileResult(path, outputs, None, report)
    except (JaxdarkError, ValueError, OSError) as e:
        msg = one_line(e, path)
        return FileResult(path, outputs, msg, msg)
    except Exception as e:  # e.g. out of memory in XLA: report it, keep the batch going
        msg = one_line(RuntimeError(f"{type(e).__name__}: {one_line(e)}"), path)
        return FileResult(path, outputs, msg, msg)


def _validate(args: argparse.Namespace) -> list[float]:
    from jaxdark.imaging.amplifier import check_m
    from jaxdark.restorer import check_amplification

    if args.amplification is not None and args.m is not None:
        raise ValueError("give --m or --amplification, not both")
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

    ms = _validate(args)
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
    for path, targets in zip(paths, plan, strict=True):
        if args.skip_existing and all(out.exists() for _, out in targets):
            skipped += 1
            tqdm.write(f"{printable_path(path)}: skipped, its outputs exist", file=sys.stdout)
            bar.update(1)
            continue
        if args.skip_existing:
            targets = [(m, out) for m, out in targets if not out.exists()]
        result = restore_one(
            restorer, path, targets, args.amplification, args.format, args.overwrite
        )
        results.append(result)
        tqdm.write(
            ("FAILED " if result.error else "") + result.report,
            file=sys.stderr if result.error else sys.stdout,
        )
        bar.update(1)
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
