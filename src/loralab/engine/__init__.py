"""What both systems share: the training loop, checkpoints, resume, the event log,
device/dtype/distributed set-up. A system plugs in through :mod:`loralab.engine.system`."""
