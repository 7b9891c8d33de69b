"""The progress listener writes pipeline_metrics over TLS when CASSANDRA_SSL=true.

The stack offers TLS on Cassandra's native port beside plaintext (STACK_TLS=true, set by
tests/conftest.py), so a listener that ignored CASSANDRA_SSL would still write, in clear: the
test checks the listener's own connection is a verified TLS one, and the server sees it so.
"""

from __future__ import annotations

import datetime as dt
import ssl
import uuid
from typing import Any

from common import job_settings
from common.clients import cassandra_session
from common.settings import Settings, from_mapping
from jobs.listener import MetricsListener, progress_row


def _progress(name: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "name": name,
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "batchId": 3,
        "numInputRows": 20,
        "inputRowsPerSecond": 4.0,
        "processedRowsPerSecond": 8.0,
        "durationMs": {"addBatch": 900, "triggerExecution": 1000},
        "sources": [{"endOffset": {"t": {"0": 20}}}],
    }


def test_listener_writes_pipeline_metrics_over_tls(stack: Settings) -> None:
    tls = from_mapping({**stack.env, "CASSANDRA_SSL": "true"}, stack.stack.root)
    assert tls.cassandra.ssl and tls.cassandra.ssl_cafile.endswith("tls/ca.pem")
    job = job_settings.from_settings(tls)
    name = f"listener-tls-{uuid.uuid4().hex[:10]}"
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    listener = MetricsListener(job)
    c = tls.cassandra
    with cassandra_session(c, c.admin, c.keyspace) as admin:
        try:
            listener.write(progress_row(_progress(name, at), None))
            assert listener._cluster is not None
            connection = listener._cluster.control_connection._connection
            assert connection is not None
            sock = connection._socket
            assert isinstance(sock, ssl.SSLSocket) and sock.version() in {"TLSv1.2", "TLSv1.3"}
            assert listener._cluster.ssl_context is not None and listener._cluster.ssl_context.check_hostname
            clients = admin.execute("SELECT port, ssl_enabled, username FROM system_views.clients").all()
            ours = [(r.ssl_enabled, r.username) for r in clients if r.port == sock.getsockname()[1]]
            assert ours == [(True, c.writer.user)]
            rows = admin.execute(
                "SELECT batch_id, input_rows, trigger_ms, end_offsets FROM pipeline_metrics "
                "WHERE day = %s AND batch_time = %s AND query_name = %s",
                (at.date(), at, name),
            ).all()
            assert [tuple(r) for r in rows] == [(3, 20, 1000, '{"t": {"0": 20}}')]
        finally:
            listener.close()
            admin.execute(
                "DELETE FROM pipeline_metrics WHERE day = %s AND batch_time = %s AND query_name = %s "
                "AND batch_id = 3",
                (at.date(), at, name),
            )
