"""Analytics: named analyses over Cassandra and the Delta lake, their catalogue and report.

Each analysis is data (`catalogue.ANALYSES`): its question, why it matters, the store it runs
on, and a function that runs the query there and returns the rows together with the exact
query text it executed, so the report (and docs/INSIGHTS.md) show what really ran.

Where each one runs, and why: every analysis must answer in seconds at a million users.
- Delta (Spark SQL, `delta_queries`): questions about people, over `silver_users` (one row per
  person, every field the job keeps: country, city, nationality, dates of birth and
  registration, email domain), and the history the serving stores do not keep: every Kafka
  record in bronze, the quarantine, the versions of the gold tables (time travel). Spark reads
  only the columns a query needs and aggregates in parallel; a million users take seconds.
- Cassandra (CQL, `cassandra_queries`): questions the serving tables were keyed for
  (aggregates by group, quality metrics by UTC day partition, new users counted on the server
  one hour of a day partition at a time); never ALLOW FILTERING, never a scan of the users.
- Not MongoDB: the local server (FerretDB 1.24 on SQLite) evaluates every aggregation in
  its Go process over all documents, decoded one by one (a `$count` of 100,000 users takes
  17 s, a `$group` 25 s; a `$group` by (registered_date, birth_year) ran for 9+ minutes on
  58,500 users). The collection serves one person's document; statistics are Spark's.

`python -m analytics` (`cli`) runs the Cassandra analyses in this process and the Delta ones
through `scripts/spark-submit.sh analytics/spark_job.py --delta-json FILE` (the project's
pinned jars and ivy cache), then writes reports/insights.{md,html,json} (`report`).

Nothing here but `spark_job` imports pyspark: the dashboard imports the catalogue and the
Cassandra analyses without starting (or loading) Spark.
"""
