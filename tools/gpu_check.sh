#!/usr/bin/env bash
# The GPU check (issue 27, item 8): run it where a CUDA device is lent, from
# the repository root of a machine with skmeta installed (a CUDA build of
# torch), and quote its output. Under 8 minutes on one GPU:
#   1. the test suite's device-dependent tests, on the GPU machine;
#   2. tools/gpu_check.py: fit and evaluate_episodes on cuda in float32 and
#      bfloat16, a model saved on the GPU and loaded on the CPU;
#   3. benchmarks/fit_speed.py on the GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
echo "== device-dependent tests"
pytest -q -p no:cacheprovider -n 0 -k "device or cuda or precision" \
    tests/test_base.py tests/test_prototypical.py tests/test_persistence.py \
    tests/test_embedders.py tests/test_precision.py || status=1
echo "== fit, evaluate, save and load on the GPU"
python tools/gpu_check.py || status=1
echo "== benchmarks/fit_speed.py --device cuda"
(cd benchmarks && python fit_speed.py --device cuda --episodes 100 --repeats 3) || status=1
exit $status
