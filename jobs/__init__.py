"""Spark jobs: the entry points (stream_users, replay_bronze, erase, retention, export), the
micro-batches (pipeline), all Spark I/O (io/: one module per store); the pure DataFrame transformations are in
jobs/core/."""
