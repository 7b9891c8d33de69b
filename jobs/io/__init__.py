"""All Spark I/O of the jobs, one module per store: kafka, delta, cassandra, mongo; the session
(session) and the retries of every write (retry). Each write is idempotent, so a micro-batch
that runs twice (after a crash or a SIGKILL between two sinks) changes nothing the second time.
"""
