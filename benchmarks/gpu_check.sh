#!/usr/bin/env bash
# One GPU session, in order: the GPU-only tests, chapter 3's quick profile as a pre-flight (the same code
# paths as full; stops here on failure), chapter 3's full profile, the GPU benchmarks, then chapter 3's
# detector at two larger sizes (benchmarks/detector_capacity.py, side by side, each epoch logged) while
# time is left. Everything it makes is copied to $OUT (default /tmp/gpu_check): results as tarballs, logs.
# The phase "sweep" builds chapter 3's full corpus once, then trains the detector variants of $SWEEP
# (SIZE:EPOCHS:SNR_LOW:SNR_HIGH each) side by side in the background while the other phases run, and
# scores each with stage 2 (benchmarks/stage2_sweep.py: ema, seed 0, the full profile's rate); their logs
# come back in sweep.tgz.
# Usage on a GPU machine with this project's dependencies importable:
#   bash benchmarks/gpu_check.sh [BUDGET_S] [PHASES]   (PHASES: default "tests quick full bench capacity";
#   any of those and "sweep")
set -uo pipefail
budget=${1:-560}
phases=" ${2:-tests quick full bench capacity} "
want() { [[ "$phases" == *" $1 "* ]]; }
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
left() { echo $((budget - SECONDS)); }
log() { echo "[gpu_check ${SECONDS}s] $*"; }
pack() { tar czf "$OUT/ch3_$1.tgz" results/"$1"/03_prototype_xai results/"$1"/run.json \
  book/_executed/03_prototype_xai.ipynb checkpoints/"$1"/03_prototype_xai 2>/dev/null; }
nvidia-smi -L; python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'
python3 -m ipykernel install --sys-prefix --name audioxai --display-name "Python 3 (audioxai)" >/dev/null || exit 1
sweep_dir=$(mktemp -d); sweep_pids=()
# Whatever ends the script (a failed pre-flight included), the sweep's jobs stop and their logs come back.
pack_sweep() { for p in "${sweep_pids[@]}"; do pkill -TERM -P "$p"; kill "$p"; done 2>/dev/null
  ls "$sweep_dir"/*.log >/dev/null 2>&1 && tar czf "$OUT/sweep.tgz" -C "$sweep_dir" --exclude=ckpt .; }
trap pack_sweep EXIT
if want sweep; then
  log "chapter 3 corpus (built once for every run)"
  python3 benchmarks/detector_capacity.py --build-only > "$sweep_dir/corpus.log" 2>&1 || { tail -5 "$sweep_dir/corpus.log"; exit 1; }
  tail -1 "$sweep_dir/corpus.log"
  for v in ${SWEEP:-128x64x2:60:30:60 128x128x2:60:30:60 256x128x2:60:30:60 256x256x2:60:30:60 256x256x2:60:20:50}; do
    IFS=: read -r size epochs lo hi <<< "$v"
    lo=$(printf '%g' "$lo"); hi=$(printf '%g' "$hi")  # the folder name detector_capacity.py writes
    tag="${size}_e${epochs}_snr${lo}-${hi}"
    t=$(( $(left) - 15 ))
    [ "$t" -ge 60 ] || { log "sweep $tag skipped: $t s left"; continue; }
    log "sweep $tag (background, at most $t s)"
    ( OMP_NUM_THREADS=2 timeout "$t" python3 benchmarks/detector_capacity.py --device "${SWEEP_DEVICE:-cuda}" \
        --sizes "$size" --epochs "$epochs" --snr "$lo" "$hi" --keep "$sweep_dir/ckpt" &&
      OMP_NUM_THREADS=2 timeout $(( $(left) > 20 ? $(left) - 10 : 10 )) python3 benchmarks/stage2_sweep.py \
        --device "${SWEEP_DEVICE:-cuda}" --checkpoint "$sweep_dir/ckpt/$tag/avg_5_best.pth" --lrs 5e-5 --modes ema --seeds 0
    ) > "$sweep_dir/$tag.log" 2>&1 &
    sweep_pids+=($!)
  done
  log "the sweep shares the GPU with the phases below: their timings are not clean measurements"
fi
if want tests; then log "GPU-only tests"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_runtime.py tests/explain/test_frame_attributions.py \
  tests/metrics/test_randomisation.py 2>&1 | tail -3; fi
if want quick; then log "chapter 3 quick (pre-flight)"
timeout 170 python3 -m audioxai.book run --profile quick --only 03_prototype_xai > "$OUT/quick.log" 2>&1
rc=$?; tail -5 "$OUT/quick.log"; pack quick
[ $rc -eq 0 ] || { log "pre-flight failed (rc $rc): stopping"; exit $rc; }; fi
if want full; then log "chapter 3 full"
timeout $(left) python3 -m audioxai.book run --profile full --only 03_prototype_xai > "$OUT/full.log" 2>&1
rc=$?; tail -5 "$OUT/full.log"; pack full
log "full rc $rc"; fi
want bench && for b in "moe_dispatch.py --device cuda" "shap_asr.py --device cuda" "lmac_latency.py --device cuda"; do
  [ "$(left)" -gt 30 ] || break
  log "benchmark $b"
  timeout $(left) python3 benchmarks/$b 2>&1 | tail -15 | tee -a "$OUT/benchmarks.log"
done
if want capacity && [ "$(left)" -gt 60 ]; then
  log "detector capacity (two sizes side by side, $(left) s left)"
  capacity_pids=()
  for size in 256x128x2 256x256x4; do
    timeout $(left) python3 benchmarks/detector_capacity.py --device cuda --sizes $size > "$OUT/capacity_$size.log" 2>&1 &
    capacity_pids+=($!)
  done
  wait "${capacity_pids[@]}"; tail -n 2 "$OUT"/capacity_*.log
fi
if want sweep; then
  log "waiting for the sweep"; [ ${#sweep_pids[@]} -gt 0 ] && wait "${sweep_pids[@]}"; sweep_pids=()
  for f in "$sweep_dir"/*.log; do echo "== $(basename "$f")"; grep -E '^\{"hidden"|^\{"lr"|^\{"checkpoint"|Error|error' "$f" | cut -c1-900; done
fi
log "done"
