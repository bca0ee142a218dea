#!/usr/bin/env bash
# make gpu-check: the GPU check in one command, for a CUDA machine with the project carried over
# and `source gpu/setup-on-gpu.sh` done (../shared/gpu: the offline install). Writes one log and
# one JSON into $OUT (default /tmp/gpu-check): gpu-check.log, gpu-check.json.
#   1. the `gpu` test set;
#   2. the food-11-shaped end-to-end run: FOLDS x EPOCHS (default 5 x 30) of resnet18 at 128 px
#      on 13,200 photos (gpu/food11_big.py), `dvc repro -f` from the raw zip to a validated CSV,
#      with its wall time, epoch-loop share, first-step and predict times;
#   3. `benchmarks/bench.py --device cuda` (train rows for both backends, the bare step);
#   4. the whole suite, in what is left of BUDGET seconds (default 480).
# Each step's exit code and seconds go to the JSON; a failed step does not stop the next.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}; EPOCHS=${EPOCHS:-30}; FOLDS=${FOLDS:-5}; BUDGET=${BUDGET:-480}
PHOTOS=${PHOTOS:-8800 2200 2200}  # train, validation, test photos of the food-11-shaped zip
mkdir -p "$OUT"; LOG=$OUT/gpu-check.log; : > "$LOG"; : > "$OUT/steps.tsv"
command -v python >/dev/null || { mkdir -p /tmp/shim; ln -sf "$(command -v python3)" /tmp/shim/python
                                  export PATH=/tmp/shim:$PATH; }  # dvc.yaml runs `python -m imgcomp`
t0=$(date +%s)
step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2; shift 2; local s; s=$(date +%s)
  echo "=== $name ($(( s - t0 )) s in)" >> "$LOG"
  timeout "$limit" "$@" >> "$LOG" 2>&1; local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - s ))" >> "$OUT/steps.tsv"
}
left() { echo $(( BUDGET - ($(date +%s) - t0) )); }
folds=$(python3 -c "print(list(range($FOLDS)))")
step gpu_tests 150 python3 -m pytest -q -p no:cacheprovider -m gpu --junitxml="$OUT/gpu-tests.xml"
step food11_zip 60 python3 gpu/food11_big.py "$OUT/raw" $PHOTOS
step run_shape "$(left)" python3 benchmarks/run_shape.py --raw "$OUT/raw" --set competition=food11 \
  --set image_size=128 --set 'train.models=[resnet18]' --set train.batch_size=256 \
  --set "train.epochs=$EPOCHS" --set "folds.run=$folds" --out "$OUT/run-shape.json" --log "$OUT/run-shape.log"
step bench "$(left)" python3 benchmarks/bench.py --device cuda --out "$OUT/bench.json"
step suite "$(left)" python3 -m pytest -q -p no:cacheprovider -n 12 -m "not slow" --junitxml="$OUT/suite.xml"
python3 - "$OUT" <<'PY' > "$OUT/gpu-check.json"
import json, re, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
steps = {n: {"rc": int(rc), "seconds": int(s)} for n, rc, s in
         (l.split("\t") for l in (out / "steps.tsv").read_text().splitlines())}
def junit(name):
    p = out / name
    if not p.is_file():
        return None
    s = ET.parse(p).getroot()
    s = s if s.tag == "testsuite" else s[0]
    return {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.is_file() else None
log = (out / "run-shape.log").read_text() if (out / "run-shape.log").is_file() else ""
first = [float(m) for m in re.findall(r"first step ([0-9.]+) s after the process started", log)]
print(json.dumps({"steps": steps, "gpu_tests": junit("gpu-tests.xml"), "suite": junit("suite.xml"),
                  "run_shape": load("run-shape.json"), "first_step_s": first,
                  "bench": load("bench.json")}, indent=1))
PY
echo "gpu-check: $OUT/gpu-check.json, $OUT/gpu-check.log ($(( $(date +%s) - t0 )) s)"
