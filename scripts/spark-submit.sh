#!/usr/bin/env bash
# Submit a job of jobs/ with the pinned configuration of conf/spark-defaults.conf.
#
#   scripts/spark-submit.sh [--master URL] [spark-submit options] jobs/stream_users.py [job options]
#
# Local by default (local[2]); `--master spark://HOST:7077` runs the same code on a
# standalone cluster (checkpoints and the lake must then be on a path every executor sees).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$VENV_PY" ] || { echo "spark-submit: run 'make venv' first" >&2; exit 2; }

SPARK_HOME="$("$VENV_PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME PYSPARK_PYTHON="$VENV_PY" PYSPARK_DRIVER_PYTHON="$VENV_PY"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-$STACK_BIND_HOST}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# The project's packages, shipped to executors (needed on a cluster, harmless locally).
# Named by content and renamed into place, never rewritten: a job starting meanwhile (or
# an executor fetching it later from the driver) must not see it change under it
# ("File .../project.zip exists and does not match contents" when two jobs start together).
mkdir -p "$STACK_DIR/spark"
PYFILES="$(cd "$ROOT" && "$VENV_PY" - "$STACK_DIR/spark" <<'PY'
import hashlib, os, pathlib, sys, tempfile, zipfile
out = pathlib.Path(sys.argv[1])
fd, tmp = tempfile.mkstemp(dir=out, prefix=".project-", suffix=".zip")
with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as z:
    for pkg in ("common", "contract", "jobs", "analytics"):
        for f in sorted(pathlib.Path(pkg).rglob("*.py")):
            z.write(f)
digest = hashlib.sha256(pathlib.Path(tmp).read_bytes()).hexdigest()[:16]
final = out / f"project-{digest}.zip"
os.chmod(tmp, 0o644)
os.replace(tmp, final)
print(final)
PY
)"

# The connector jars, resolved once: Ivy resolves spark.jars.packages on every start (seconds
# of a restart, docs/PERFORMANCE.md), so the resolved list is kept in the cache, named by the
# coordinates and the Ivy settings; later starts pass the jar files themselves.
PACKAGES="$(sed -n 's/^spark\.jars\.packages[[:space:]]*//p' "$ROOT/conf/spark-defaults.conf")"
JARS_KEY="$(printf '%s\n' "$PACKAGES" | cat - "$ROOT/conf/ivysettings.xml" | sha256sum | cut -c1-16)"
JARS_FILE="$STACK_CACHE_DIR/spark-jars/$JARS_KEY.txt"
jar_args=()
if [ -s "$JARS_FILE" ] && tr ',' '\n' < "$JARS_FILE" | while read -r jar; do [ -f "$jar" ] || exit 1; done; then
  jar_args=(--conf "spark.jars.packages=" --conf "spark.jars=$(cat "$JARS_FILE")")
else
  mkdir -p "$STACK_CACHE_DIR/spark-jars"
  echo "[spark-submit] resolving the connector jars (first run only)" >&2
  resolver="$(mktemp -d)/resolve.py"
  printf '%s\n' "from pyspark.sql import SparkSession" \
    "s = SparkSession.builder.getOrCreate()" \
    "print('JARS=' + s.sparkContext.getConf().get('spark.jars', ''))" \
    "s.stop()" > "$resolver"
  resolved="$("$SPARK_HOME/bin/spark-submit" --master local[1] \
    --properties-file "$ROOT/conf/spark-defaults.conf" \
    --conf "spark.jars.ivy=$STACK_CACHE_DIR/ivy" --conf "spark.jars.ivySettings=$ROOT/conf/ivysettings.xml" \
    --conf "spark.ui.enabled=false" \
    --driver-java-options "-Divy.default.ivy.user.dir=$STACK_CACHE_DIR/ivy -Dlog4j2.configurationFile=file://$ROOT/conf/log4j2.properties" \
    "$resolver" 2>/dev/null | sed -n 's/^JARS=//p' | sed 's#file://##g')"
  rm -rf "$(dirname "$resolver")"
  if [ -n "$resolved" ]; then
    printf '%s' "$resolved" > "$JARS_FILE.tmp" && mv "$JARS_FILE.tmp" "$JARS_FILE"
    jar_args=(--conf "spark.jars.packages=" --conf "spark.jars=$resolved")
  fi
fi

# A class-data-sharing archive of the driver JVM (JDK 17 AppCDS): Spark's own classes are read
# from a memory-mapped archive instead of being loaded, parsed and verified from ~250 jars at
# every start. Measured on this 2-core machine: a session + one job took 38 s of CPU without it,
# 20-24 s with it (docs/PERFORMANCE.md), which a restart after a crash and every test pays.
# Built once per JDK and Spark jars (the key), by a short run that dumps the classes it loaded
# at exit; a stale or unreadable archive is ignored by the JVM (-Xshare:auto), never fatal.
# SPARK_CDS=0 turns it off.
cds_flags=""
if [ "${SPARK_CDS:-1}" != 0 ]; then
  CDS_KEY="$({ cat "$JAVA_HOME/release"; echo "$SPARK_HOME"; ls "$SPARK_HOME/jars"; } | sha256sum | cut -c1-16)"
  CDS_FILE="$STACK_CACHE_DIR/spark-cds/$CDS_KEY.jsa"
  if [ ! -s "$CDS_FILE" ]; then
    mkdir -p "$STACK_CACHE_DIR/spark-cds"
    echo "[spark-submit] building the driver's class-data archive (first run only, about a minute)" >&2
    warm="$(mktemp -d)"
    printf '%s\n' "from pyspark.sql import SparkSession, functions as F" \
      "s = SparkSession.builder.getOrCreate()" \
      "df = s.range(1000).select(F.to_json(F.struct((F.col('id') % 7).alias('k'), F.lit('x').alias('v'))).alias('j'))" \
      "p = df.select(F.from_json('j', 'k INT, v STRING').alias('r')).select('r.*')" \
      "p.groupBy('k').agg(F.count('*'), F.max('v')).collect()" \
      "q = s.readStream.format('rate').load().writeStream.format('noop').trigger(availableNow=True).start()" \
      "q.awaitTermination(120)" \
      "s.stop()" > "$warm/warm.py"
    "$SPARK_HOME/bin/spark-submit" --master local[2] \
      --properties-file "$ROOT/conf/spark-defaults.conf" \
      --conf "spark.ui.enabled=false" --conf "spark.jars.ivy=$STACK_CACHE_DIR/ivy" \
      --conf "spark.jars.ivySettings=$ROOT/conf/ivysettings.xml" "${jar_args[@]}" \
      --driver-java-options "-XX:ArchiveClassesAtExit=$warm/spark.jsa -Xlog:cds=off -Xlog:cds+dynamic=off -Divy.default.ivy.user.dir=$STACK_CACHE_DIR/ivy -Dlog4j2.configurationFile=file://$ROOT/conf/log4j2.properties" \
      "$warm/warm.py" >"$warm/log" 2>&1 || true
    if [ -s "$warm/spark.jsa" ]; then
      mv -f "$warm/spark.jsa" "$CDS_FILE"
    else
      echo "[spark-submit] the JVM wrote no class-data archive: starting without one (slower, nothing else changes)" >&2
    fi
    rm -rf "$warm"
  fi
  [ -s "$CDS_FILE" ] && cds_flags="-XX:SharedArchiveFile=$CDS_FILE -Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"
fi

master="${SPARK_MASTER:-local[2]}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --master) master="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

# A heap OutOfMemoryError ends the driver JVM at once (Spark would otherwise carry on with a
# JVM in an unknown state); its Python side then ends too (jobs/lifeline.py), and the
# supervisor restarts the job from its checkpoint.
# G1 gives back the heap it no longer needs: a periodic collection when none ran for 30 s
# (the specification's rate allocates little) and at most 40 % of the committed heap left
# free. Without these the heap stayed near its 1.5 GB maximum at 10 users / 10 s
# (docs/PERFORMANCE.md, memory). System.gc() starts a concurrent cycle, never a full
# stop-the-world collection: the lake asks for one after each batch at the specification's
# rate (jobs/pipeline.py, give_back_memory), and so does Spark's periodic context cleaner.
gc_flags="-XX:G1PeriodicGCInterval=30000 -XX:MinHeapFreeRatio=20 -XX:MaxHeapFreeRatio=40 -XX:+ExplicitGCInvokesConcurrent"
exec "$SPARK_HOME/bin/spark-submit" \
  --master "$master" \
  --properties-file "$ROOT/conf/spark-defaults.conf" \
  --conf "spark.jars.ivy=$STACK_CACHE_DIR/ivy" \
  --conf "spark.scheduler.allocation.file=$ROOT/conf/fairscheduler.xml" \
  --conf "spark.jars.ivySettings=$ROOT/conf/ivysettings.xml" \
  --driver-java-options "-XX:+ExitOnOutOfMemoryError $gc_flags $cds_flags -Divy.default.ivy.user.dir=$STACK_CACHE_DIR/ivy -Dlog4j2.configurationFile=file://$ROOT/conf/log4j2.properties" \
  "${jar_args[@]}" \
  --py-files "$PYFILES" \
  "${args[@]}"
