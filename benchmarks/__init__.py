"""llmemo's benchmarks: speed shown as ratios to a floor measured in the same run.

Run ``python -m benchmarks --help``. Nothing here is imported by the library or the tests.
"""
