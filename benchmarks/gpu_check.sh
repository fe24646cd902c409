#!/usr/bin/env bash
# One GPU session, in order: the GPU-only tests, chapter 3's quick profile as a pre-flight (the same code
# paths as full; stops here on failure), chapter 3's full profile, then the GPU benchmarks while time is
# left. Everything it makes is copied to $OUT (default /tmp/gpu_check): results and logs as tarballs.
# Usage on a GPU machine with this project's dependencies importable: bash benchmarks/gpu_check.sh [BUDGET_S]
set -uo pipefail
budget=${1:-560}
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
left() { echo $((budget - SECONDS)); }
log() { echo "[gpu_check ${SECONDS}s] $*"; }
pack() { tar czf "$OUT/ch3_$1.tgz" results/"$1"/03_prototype_xai results/"$1"/run.json \
  book/_executed/03_prototype_xai.ipynb checkpoints/"$1"/03_prototype_xai 2>/dev/null; }
nvidia-smi -L; python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'
python3 -m ipykernel install --sys-prefix --name audioxai --display-name "Python 3 (audioxai)" >/dev/null || exit 1
log "GPU-only tests"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_runtime.py tests/explain/test_frame_attributions.py \
  tests/metrics/test_randomisation.py 2>&1 | tail -3
log "chapter 3 quick (pre-flight)"
timeout 170 python3 -m audioxai.book run --profile quick --only 03_prototype_xai > "$OUT/quick.log" 2>&1
rc=$?; tail -5 "$OUT/quick.log"; pack quick
[ $rc -eq 0 ] || { log "pre-flight failed (rc $rc): stopping"; exit $rc; }
log "chapter 3 full"
timeout $(left) python3 -m audioxai.book run --profile full --only 03_prototype_xai > "$OUT/full.log" 2>&1
rc=$?; tail -5 "$OUT/full.log"; pack full
log "full rc $rc"
for b in "moe_dispatch.py --device cuda" "shap_asr.py --device cuda" "lmac_latency.py --device cuda"; do
  [ "$(left)" -gt 30 ] || break
  log "benchmark $b"
  timeout $(left) python3 benchmarks/$b 2>&1 | tail -15 | tee -a "$OUT/benchmarks.log"
done
log "done"
