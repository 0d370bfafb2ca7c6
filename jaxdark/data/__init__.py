"""Training data: where pairs come from and how they become batches.

* `sid_files`: SID Sony's list files, pairs and reading a pair's raw data (no TFDS).
* `sid`: SID Sony as a TFDS dataset in array_record format (`prepare`, `SIDPairs`).
* `synthetic`: dark RAW training pairs synthesised from ordinary sRGB photos (NumPy only).
* `noise`: the physics-based noise of a dark Sony a7S II exposure (ELD model), used by
  `synthetic`.
* `synthetic_source`: random-access sources of synthetic pairs for the pipeline, and
  mixing them with SID.
* `pipeline`: the grain input pipeline (shards, Bayer-safe crops and flips,
  amplification, batching, worker processes, a checkpointable iterator).
* `naive`: naive brightening (multiply and develop), the baseline a restoration must beat.
* `chart`: a synthetic colour-chart scene and a simple dark-sensor simulation (the demo's
  and tests' scene).
"""
