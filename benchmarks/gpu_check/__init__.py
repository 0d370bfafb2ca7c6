"""One prepared accelerator check: every number issue 10 asks of a GPU, in one run.

    python -m benchmarks.gpu_check --out DIR [--weights PATH] [--smoke | --dry]
                                   [--budget-s S] [--sections a,b,...] [--results-dir D]

On a GPU machine run ``bash benchmarks/gpu_check.sh`` (installs carried wheels first).
The harness (`benchmarks.gpu_check.__main__`) runs the sections of `SECTIONS` in order.
Each has its own time budget inside the run's budget and runs inside try/except, so a
failing one records its error and the others still run; DIR/gpu_check.json and
DIR/gpu_check.md are rewritten after every measurement, so a run that is killed keeps what
it finished; after each section its rows are also written in the recorded-results format
(`benchmarks.results_io`) as ``gpu_<section>.json`` under ``--results-dir``
(default DIR/results).

Sections (one module each, under benchmarks/gpu_check/):

* ``env`` (`env`): device name, driver and memory (nvidia-smi), JAX / jaxlib / flax /
  optax / torch versions, the devices JAX and torch see.
* ``parity`` (`parity`): the official weights, float32 with precision "highest" on both
  sides (JAX: ``precision="highest"`` / ``jax.default_matmul_precision``; torch: TF32 off)
  against our PyTorch reference on the same device: max |difference| (bound 1e-5).
* ``restore_4k`` (`restore`): 2144x3840 restore time (median of N calls, each waited for
  with ``block_until_ready``, after compile and two warm-up calls) and frames/s for
  fp32-highest, fp32 at XLA's default precision (TF32 on recent NVIDIA GPUs) and bf16
  (`fold_params(model, bfloat16)`: bfloat16 multiplies, float32 accumulation and
  activations), at batch 1 then larger batches; compile time; XLA's buffer sizes; the
  process's peak device memory so far; differences between the three outputs.
* ``train`` (`train`): the training step at the recipe batch (8 x 512x512: forward, L1 +
  0.2 * (1 - MS-SSIM), backward, Adam) in float32 and in bfloat16 compute
  (`make_train_step(..., compute_dtype=...)`) against our PyTorch reference step
  (`benchmarks.common.torch_train_step`) on the same device in the same run, plus the
  reference under ``torch.autocast(bfloat16)``.
* ``memory`` (`memory`): peak device memory of one restore per configuration, in two fresh
  processes: one compiling (autotuning included), one loading the executable from the
  compilation cache (the restore alone).
* ``sony`` (`restore`): the full Sony frame (2848x4256), the three configurations at batch 1.
* ``amplifier`` (`amplifier`): `estimate_amplification` on a 12.1 MP frame, against the
  NumPy reference (`convert_weights.reference_amplifier`).
* ``bf16_error`` (`bf16_error`): bfloat16 vs float32 outputs on the demo scene and random
  inputs (`benchmarks.bf16_error`).
* ``concurrency`` (`concurrency`): the 4K network in float32 and bfloat16 under XLA
  command-buffer scheduling settings that may run the scale branches at once, each in a
  fresh process, and a `jax.profiler` trace (DIR/profile).

Adding a section: write a module here with ``run(check, entry)`` (record rows with
``check.row(entry, quantity, value, notes)``, skip what does not fit with
``check.skip(entry, what, seconds)``) and add one `Section` line to `SECTIONS` in
``harness.py``. A benchmark script that already has a ``gpu_rows(...)`` function
returning ``(quantity, value, notes)`` rows becomes a section with one line,
``rows_section("name", "benchmarks.script", budgets)``: the harness imports the module when
the section runs and passes ``gpu_rows`` the arguments it names among ``smoke`` (bool),
``mode`` ("full" / "dry" / "smoke"), ``repeats``, ``model`` (the network, official
weights when found), ``weights`` (their path or None), ``state_dict`` (the PyTorch
reference's) and ``time_left_s``.

Memory, what the numbers mean: ``peak_bytes_in_use`` is XLA's allocator statistic
(``device.memory_stats()``): the most device memory the process's live buffers
(parameters, inputs, outputs, temporaries, convolution workspaces) held at one time.
It never goes down within a process, so ``restore_4k`` reports it "so far", and the
``memory`` section measures each configuration in a process of its own (started with
XLA_PYTHON_CLIENT_PREALLOCATE=false). It excludes the CUDA context and loaded kernels
(a few hundred MiB per process, outside the allocator). ``xla_*_bytes`` are XLA's
compile-time buffer assignment of one executable (arguments, output, temporaries).

Modes: the default is the full run for one H100 (about 7 minutes: ``--budget-s`` 420);
``--dry`` runs every code path of the full run at small sizes (for a CPU);
``--smoke`` runs every section at tiny sizes with a small network for training (CI).
"""
