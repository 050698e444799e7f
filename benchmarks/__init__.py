"""graphc's benchmarks (SPEC §10).

python -m benchmarks --workload mlp2|mlp3|linreg|chain|compile|all
"""
