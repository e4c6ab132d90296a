#!/usr/bin/env bash
# GPU smoke test: the check that stands in for CI on a machine with an NVIDIA GPU and TensorRT.
#
# Builds FP16, INT8 and mixed INT8/FP16 engines of the demo digits CNN and of a torchvision model
# (resnet18, random init: no weights are downloaded), validates every engine against the FP32 ONNX in
# ONNX Runtime, benchmarks them, and prints a PASS/FAIL summary. Exit status 0 only when all steps pass.
#
# Usage: scripts/gpu_smoke.sh [WORK_DIR]      (default: runs/gpu_smoke; it is replaced)
# Needs: trtq installed (pip install -e .), tensorrt (pip install tensorrt), torch with CUDA, a GPU.
# Expected output: see docs/tensorrt.md ("GPU smoke test").
set -uo pipefail

WORK="${1:-runs/gpu_smoke}"
PY="${PYTHON:-python}"
LOG="$WORK/logs"
declare -a NAMES=()
declare -a RESULTS=()

rm -rf "$WORK"
mkdir -p "$LOG"

step() {  # step NAME COMMAND...: run, log to $LOG/NAME.log, record PASS/FAIL
    local name="$1"
    shift
    printf '%-28s ' "$name"
    if "$@" >"$LOG/$name.log" 2>&1; then
        echo "PASS"
        RESULTS+=("PASS")
    else
        echo "FAIL (see $LOG/$name.log)"
        tail -n 3 "$LOG/$name.log" | sed 's/^/    /'
        RESULTS+=("FAIL")
    fi
    NAMES+=("$name")
}

echo "== environment"
"$PY" - <<'EOF' || { echo "FAIL: python environment"; exit 1; }
import torch, trtq
from trtq.engines import tensorrt_status
ok, why = tensorrt_status()
print(f"trtq {trtq.__version__}; {why}")
print(f"torch {torch.__version__}; CUDA available: {torch.cuda.is_available()}"
      + (f"; GPU {torch.cuda.get_device_name(0)} (sm {'.'.join(map(str, torch.cuda.get_device_capability(0)))})"
         if torch.cuda.is_available() else ""))
raise SystemExit(0 if ok and torch.cuda.is_available() else 1)
EOF

# FP16-typed copy of an FP32 graph (ModelOpt AutoCast, CPU), for the FP16 engine.
# shellcheck disable=SC2317  # called through step()
fp16_graph() {  # fp16_graph IN.onnx OUT.onnx
    "$PY" - "$1" "$2" <<'EOF'
import sys, onnx
from modelopt.onnx.autocast import convert_to_mixed_precision
model = convert_to_mixed_precision(onnx_path=sys.argv[1], low_precision_type="fp16", keep_io_types=True,
                                   providers=["cpu"])
onnx.save(model, sys.argv[2])
EOF
}

echo "== demo digits CNN (1x8x8 grey, 10 classes)"
DEMO="$WORK/demo"
step demo_int8_build trtq demo --out "$DEMO"
DEMO_FILES="$DEMO/demo"
DEMO_PRE=(--channels 1 --size 8 --no-resize --mean 0.5 --std 0.5)
step demo_mixed_build trtq build --model "$DEMO_FILES/digits_cnn.ts" --calib-data "$DEMO_FILES/data/calib" \
    --eval-data "$DEMO_FILES/data/val" "${DEMO_PRE[@]}" --fallback 2 --out "$WORK/demo_mixed"
step demo_fp16_graph fp16_graph "$DEMO/run/model.onnx" "$WORK/demo_fp16.onnx"
step demo_fp16_engine trtq engine --onnx "$WORK/demo_fp16.onnx" --out "$WORK/demo_fp16.plan" --precision fp16
for kind in int8 mixed fp16; do
    case "$kind" in
        int8) plan="$DEMO/run/model.plan" ;;
        mixed) plan="$WORK/demo_mixed/model.plan" ;;
        fp16) plan="$WORK/demo_fp16.plan" ;;
    esac
    step "demo_${kind}_validate" trtq validate --model "$plan" --reference "$DEMO/run/model.onnx" \
        --data "$DEMO_FILES/data/val" "${DEMO_PRE[@]}" --batch-size 8 --out "$WORK/demo_${kind}_validation.json"
done
step demo_bench trtq bench "$DEMO/run/model.onnx" "$WORK/demo_fp16.plan" "$DEMO/run/model.plan" \
    "$WORK/demo_mixed/model.plan" --batch 1,8,32 --out "$WORK/demo_bench"
step demo_bench_cuda_graph trtq bench "$DEMO/run/model.plan" --batch 1,8,32 --cuda-graph --no-copies \
    --out "$WORK/demo_bench_graph"

echo "== torchvision resnet18 (random init, 3x224x224, random calibration data)"
TV="$WORK/resnet18"
mkdir -p "$TV"
"$PY" -c "import numpy as np; np.save('$TV/calib.npy', np.random.default_rng(0).standard_normal((64, 3, 224, 224)).astype('float32'))"
step resnet18_int8_build trtq build --model resnet18 --calib-data "$TV/calib.npy" --eval-data "$TV/calib.npy" \
    --out "$TV/int8"
step resnet18_mixed_build trtq build --model resnet18 --calib-data "$TV/calib.npy" --eval-data "$TV/calib.npy" \
    --fallback 3 --out "$TV/mixed"
step resnet18_fp16_graph fp16_graph "$TV/int8/model.onnx" "$TV/fp16.onnx"
step resnet18_fp16_engine trtq engine --onnx "$TV/fp16.onnx" --out "$TV/fp16.plan" --precision fp16
for kind in int8 mixed fp16; do
    case "$kind" in
        int8) plan="$TV/int8/model.plan" ;;
        mixed) plan="$TV/mixed/model.plan" ;;
        fp16) plan="$TV/fp16.plan" ;;
    esac
    # random init and random data: fidelity to FP32 is what is checked, not accuracy
    step "resnet18_${kind}_validate" trtq validate --model "$plan" --reference "$TV/int8/model.onnx" \
        --data "$TV/calib.npy" --batch-size 8 --rtol 0.1 --atol 0.1 --out "$TV/${kind}_validation.json"
done
step resnet18_bench trtq bench "$TV/int8/model.onnx" "$TV/fp16.plan" "$TV/int8/model.plan" "$TV/mixed/model.plan" \
    --batch 1,8,32 --out "$TV/bench"

echo "== engine precision (from engine.json)"
"$PY" - "$WORK" <<'EOF'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*engine.json")):
    m = json.loads(p.read_text())
    prec = m.get("precision", {})
    print(f"{str(p.relative_to(sys.argv[1])):40s} {m.get('status'):24s} TensorRT {m.get('tensorrt_version')} "
          f"{m.get('typing')}ly typed; layers {prec.get('by_precision')}")
EOF

echo "== summary"
pass=0
fail=0
for i in "${!NAMES[@]}"; do
    if [ "${RESULTS[$i]}" = "PASS" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "$pass passed, $fail failed"
if [ "$fail" -eq 0 ]; then
    echo "GPU SMOKE: PASS"
    exit 0
fi
echo "GPU SMOKE: FAIL"
exit 1
