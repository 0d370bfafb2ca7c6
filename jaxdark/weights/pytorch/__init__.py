"""Reading PyTorch checkpoints without executing them: a restricted unpickler and torch storages."""
