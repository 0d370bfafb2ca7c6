"""Camera RAW in and images out: reading RAW files, Bayer geometry, DNG writing, the amplifier,
metrics."""
