"""bench/driver_profile.py: JFR's execution samples sorted into what the job does."""

from __future__ import annotations

from bench.driver_profile import categorise


def sample(*frames: str) -> str:
    """One event as `jfr print --events jdk.ExecutionSample` writes it (innermost frame first)."""
    lines = "\n".join(f"    {frame}(Object) line: 1" for frame in frames)
    return (
        "jdk.ExecutionSample {\n  startTime = 00:29:11.793\n"
        '  sampledThread = "Executor task launch worker for task 0.0 (TID 7)" (javaThreadId = 9)\n'
        f'  state = "STATE_RUNNABLE"\n  stackTrace = [\n{lines}\n  ]\n}}\n'
    )


def test_samples_sorted_by_the_first_matching_category() -> None:
    compile_in_task = sample(
        "org.codehaus.janino.UnitCompiler.compileUnit",
        "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator$.doCompile",
        "org.apache.spark.scheduler.ShuffleMapTask.runTask",
    )
    parse_in_task = sample(
        "org.apache.spark.sql.catalyst.json.JacksonParser.parse",
        "org.apache.spark.scheduler.ShuffleMapTask.runTask",
    )
    cassandra = sample(
        "com.datastax.oss.driver.internal.core.type.codec.StringCodec.encode",
        "com.datastax.spark.connector.datasource.CassandraDriverDataWriter.write",
    )
    idle = sample("java.lang.Thread.run")
    printed = (
        "".join([compile_in_task, compile_in_task, parse_in_task, cassandra, idle])
        + "jdk.ExecutionSample {\n}\n"
    )
    assert categorise(printed, containing=("ShuffleMapTask", "Thread.run", "absent")) == {
        "samples": 5,
        "share_pct": {
            "code compilation (Janino)": 40.0,
            "JSON parse": 20.0,
            "Cassandra writer": 20.0,
            "other": 20.0,
        },
        "top_self_pct": {
            "org.codehaus.janino.UnitCompiler.compileUnit": 40.0,
            "org.apache.spark.sql.catalyst.json.JacksonParser.parse": 20.0,
            "com.datastax.oss.driver.internal.core.type.codec.StringCodec.encode": 20.0,
            "java.lang.Thread.run": 20.0,
        },
        "containing_pct": {"ShuffleMapTask": 60.0, "Thread.run": 20.0, "absent": 0.0},
    }


def test_no_samples() -> None:
    assert categorise("") == {"samples": 0, "share_pct": {}, "top_self_pct": {}}
