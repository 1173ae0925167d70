"""Training-throughput benchmarks: xpbp on the CPU and the GPU against the peers a user
would pick instead (Nielsen's per-example code, PyTorch eager, scikit-learn's
MLPClassifier) and against the GEMM ceiling of each backend. ``python -m benchmarks``."""
