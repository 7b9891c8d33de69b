"""What every process shares: the typed settings (settings, job_settings), the .env handling
(envfile) and the one builder per server (clients)."""
