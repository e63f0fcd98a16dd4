"""Training: losses (``depthlens.train.losses``), configs and the training loop."""
