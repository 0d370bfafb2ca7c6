"""Training data: the SID Sony dataset in TFDS (`sid`) and the grain pipeline (`pipeline`)."""
