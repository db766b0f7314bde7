"""TensorFlow machinery under the models and the trainer: strategies and
workers (``distribute``), per-replica XLA steps and loss scaling (``steps``).
Imports ``tensorflow`` only, so models, methods and training all build on it."""
