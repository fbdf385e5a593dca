"""The benchmark harness behind `make bench`: `python -m bench [--workload NAME ...] [--quick]`.

Every workload runs against a fresh `batchplane up` (a subprocess on a free port with its own temporary state
directory), is driven only through the stock boto3 "batch" client, and prints one JSON line to stdout. See
docs/performance.md for the workloads, the targets and the latest figures.
"""
