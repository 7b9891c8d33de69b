"""The data contract: one declaration per table and field, read by the code that writes, checks,
grants, erases and exports it (contract/tables.py). ddl/ is checked against it by a unit test
(tests/unit/test_contract.py). No Spark, no client: importable by every process."""
