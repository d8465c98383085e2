"""Bench files shipped with labsat; ``labsat.bench.builtin_bench_path`` finds them."""
