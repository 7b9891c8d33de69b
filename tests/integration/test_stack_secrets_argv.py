"""The stack scripts keep secrets off command lines: any local user reads them (`ps`, /proc/PID/cmdline).

Kafka: the real `_kafka_format` of scripts/stack/kafka.sh runs with the installed Kafka on a
throw-away data folder, through a `java` wrapper that records every command line the script
starts; Kafka's own DumpLogSegments then reads the formatted metadata back: the three SCRAM users
are there with keys derived from their passwords, no password was on a command line, and the
argument file that carried them is gone. Cassandra: the real `_cassandra_render` writes the key
store password into cassandra.yaml without handing it to any command.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

from common.settings import Settings
from tests.conftest import ROOT

# Sources the real scripts, then points Kafka's home at the temporary folder (the jars stay).
KAFKA_SCRIPT = r"""
set -euo pipefail
. scripts/lib.sh
. scripts/stack/kafka.sh
real_lib="$KAFKA_HOME/lib"
KAFKA_HOME="$T/kafka"; KAFKA_LOG="$T/kafka.log"; TLS_DIR="$T/tls"; KAFKA_TLS_LISTENER=""
mkdir -p "$KAFKA_HOME/conf"
ln -s "$real_lib" "$KAFKA_HOME/lib"
_kafka_render "$KAFKA_TEMPLATES/server.properties" "$KAFKA_HOME/conf/server.properties"
cp "$KAFKA_TEMPLATES/log4j2.properties" "$KAFKA_HOME/conf/log4j2.properties"
printf '%s\n' "$JAVA" > "$T/real_java"
JAVA="$T/java"
_kafka_check_secrets
_kafka_format
"""

# Records its argv (NUL-separated, one line per run) and a copy of any argument file with its mode.
WRAPPER = r"""#!/usr/bin/env bash
printf '%s\0' "$@" >> "$T/argv"; printf '\n' >> "$T/argv"
for a in "$@"; do
  case "$a" in @*) cp "${a#@}" "$T/argfile.seen"; stat -c %a "${a#@}" > "$T/argfile.mode" ;; esac
done
exec "$(cat "$T/real_java")" "$@"
"""


def _scram_records(java: str, data: Path) -> dict[str, dict[str, object]]:
    """UserScramCredentialRecord payloads of the bootstrap checkpoint, read by Kafka's DumpLogSegments."""
    checkpoint = data / "bootstrap.checkpoint"
    dump = subprocess.run(
        [
            *(java, "-Xmx128m", "-cp", str(data.parent / "lib" / "*"), "kafka.tools.DumpLogSegments"),
            *("--cluster-metadata-decoder", "--files", str(checkpoint)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    records = {}
    for match in re.finditer(r"payload: (\{.*\})", dump):
        record = json.loads(match.group(1))
        if record.get("type") == "USER_SCRAM_CREDENTIAL_RECORD":
            records[record["data"]["name"]] = record["data"]
    return records


def test_first_format_keeps_the_scram_passwords_off_every_command_line(
    stack: Settings, tmp_path: Path
) -> None:
    users = {"ADMIN": "fmt_admin", "PRODUCER": "fmt_producer", "JOB": "fmt_job"}
    passwords = {role: f"pw-{role.lower()}-{secrets.token_hex(8)}" for role in users}
    env = {**os.environ, "T": str(tmp_path)}
    for role, user in users.items():
        env[f"KAFKA_{role}_USER"], env[f"KAFKA_{role}_PASSWORD"] = user, passwords[role]
    (tmp_path / "java").write_text(WRAPPER)
    (tmp_path / "java").chmod(0o755)

    run = subprocess.run(
        ["bash", "-c", KAFKA_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = (tmp_path / "kafka.log").read_text() if (tmp_path / "kafka.log").exists() else ""
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{log}"

    argvs = [line.split("\0")[:-1] for line in (tmp_path / "argv").read_text().splitlines()]
    assert [argv[-1] for argv in argvs] == ["random-uuid", f"@{tmp_path}/kafka/conf/format.args"]
    everything_run = "\n".join("\0".join(argv) for argv in argvs)
    assert [p for p in passwords.values() if p in everything_run] == []
    assert [p for p in passwords.values() if p in log] == []
    # The passwords travelled in the argument file: private while it existed, removed afterwards.
    assert (tmp_path / "argfile.mode").read_text().strip() == "600"
    seen = (tmp_path / "argfile.seen").read_text()
    assert all(f"name={users[r]},password={passwords[r]}]" in seen for r in users)
    assert sorted(p.name for p in (tmp_path / "kafka" / "conf").iterdir()) == [
        "log4j2.properties",
        "server.properties",
    ]

    data = tmp_path / "kafka" / "data"
    assert (data / "meta.properties").is_file()
    records = _scram_records((tmp_path / "real_java").read_text().strip(), data)
    assert sorted(records) == sorted(users.values())
    for role, name in users.items():  # RFC 5802: the stored keys derive from that user's password
        record = records[name]
        salt = base64.b64decode(str(record["salt"]))
        salted = hashlib.pbkdf2_hmac("sha256", passwords[role].encode(), salt, int(str(record["iterations"])))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        assert (record["mechanism"], base64.b64decode(str(record["serverKey"]))) == (1, server_key), name
        assert base64.b64decode(str(record["storedKey"])) == hashlib.sha256(client_key).digest(), name


CASSANDRA_SCRIPT = r"""
set -euo pipefail
. scripts/lib.sh
. scripts/stack/tls.sh
. scripts/stack/cassandra.sh
CASSANDRA_HOME="$T/cassandra"; TLS_DIR="$T/tls"; STACK_TLS=true
mkdir -p "$TLS_DIR"; printf '%s\n' "$PW" > "$TLS_DIR/keystore.password"
PATH="$T/bin:$PATH"
_cassandra_render
printf 'vars %s %s %s\n' "$STACK_BIND_HOST" "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT"
"""
# Every external command a render could hand the password to records its argv, then runs.
COMMANDS = ("sed", "cat", "head", "mkdir", "chmod", "mv", "cp", "tee", "awk", "envsubst", "perl", "python3")


def test_cassandra_render_keeps_the_key_store_password_off_every_command_line(tmp_path: Path) -> None:
    password = secrets.token_hex(24)  # what scripts/stack/tls.sh generates
    (tmp_path / "bin").mkdir()
    for name in COMMANDS:
        real = shutil.which(name)
        if real is not None:
            wrapper = tmp_path / "bin" / name
            wrapper.write_text(
                f'#!/bin/bash\nprintf \'%s\\0\' {name} "$@" >> "$T/argv"; printf \'\\n\' >> "$T/argv"\n'
                f'exec {real} "$@"\n'
            )
            wrapper.chmod(0o755)
    env = {**os.environ, "T": str(tmp_path), "PW": password}
    run = subprocess.run(
        ["bash", "-c", CASSANDRA_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"

    argv = (tmp_path / "argv").read_text()
    assert argv.count("\n") >= 2  # the wrappers did see the render's commands (mkdir, cat, ...)
    assert password not in argv
    yaml = tmp_path / "cassandra" / "conf" / "cassandra.yaml"
    assert stat.S_IMODE(yaml.stat().st_mode) == 0o600
    template = (ROOT / "scripts" / "stack" / "cassandra" / "cassandra.yaml.template").read_text()
    host, port, storage_port = run.stdout.split("vars ")[1].split()
    expected = template
    for key, value in {
        "DATA_DIR": str(tmp_path / "cassandra" / "data"),
        "BIND_HOST": host,
        "NATIVE_PORT": port,
        "STORAGE_PORT": storage_port,
        "CLIENT_TLS": "true",
        "TLS_DIR": str(tmp_path / "tls"),
        "KEYSTORE_PASSWORD": password,
    }.items():
        expected = expected.replace(f"@{key}@", value)
    assert yaml.read_text() == expected
