"""The job's pure transformations: DataFrame -> DataFrame (or Column), no I/O, no session.

schema (the shapes read), transform (parse, explode, enrich), quality (the rules and the
quarantine), aggregates (gold), projections (the serving tables' rows), pseudonymise (keyed
HMAC), erasure (the ledger's keys, the filter and the bronze rewrite). Spark I/O is in
jobs/io/ (one module per store); the micro-batches that join them are jobs/pipeline.py.
"""
