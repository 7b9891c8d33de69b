"""Spark jobs: pure DataFrame transformations (schema, transform, quality, aggregates,
projections, pseudonymise) and the streaming entry points that do the I/O."""
