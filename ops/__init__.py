"""Administration and monitoring: the servers' accounts, schema and grants (*_setup, kafka_admin),
health, status, lag, alerts, monitor, supervise, purge, the access matrix, Prometheus."""
