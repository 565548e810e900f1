"""The launcher: queues, workers and executors (local, SLURM); the only code that starts
processes."""
