"""Throwaway services the tests and the benchmark both start: a PostgreSQL cluster and a Docker
daemon of their own. Installed as the package `testbeds` (pyproject.toml), so that benchmarks/
imports them as the tests do, with no path tricks."""
