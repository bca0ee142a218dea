#!/usr/bin/env bash
# An end-to-end `dvc repro` of food-11 (resnet18, 128 px, 1 fold) in a scratch copy of the project,
# each output line stamped with seconds since the start: where a train item's first step and
# predict's time go. Needs ../shared/gpu copied in as gpu/ (for food11_big.py).
# usage: bash scripts/e2e_food11.sh N_TRAIN N_VAL N_TEST EPOCHS  (log: $OUT/e2e.log, or /tmp)
set -euo pipefail
root=$(pwd); out=${OUT:-/tmp}; P=/tmp/e2e
rm -rf $P && mkdir -p $P && cp -r dvc.yaml .dvcignore params.yaml requirements.lock src $P/
cd $P && git init -q && python3 -m dvc init -q && cp "$root/.dvc/config" .dvc/config && git add -A && git -c user.email=e2e@localhost -c user.name=e2e commit -qm start
python3 - "$4" <<'PY'
import sys, yaml
p = yaml.safe_load(open("params.yaml"))
p.update(competition="food11", image_size=128)
p["train"].update(models=["resnet18"], epochs=int(sys.argv[1]), batch_size=256)
p["folds"]["run"] = [0]
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
python3 "$root/gpu/food11_big.py" data/raw/food11 "$1" "$2" "$3"
export PYTHONPATH=$P/src
set -o pipefail
python3 -m dvc repro 2>&1 | python3 -u -c "import sys,time;t=time.time();[print(f'{time.time()-t:7.1f} '+l,end='',flush=True) for l in sys.stdin]" > "$out/e2e.log" || { tail -40 "$out/e2e.log"; exit 1; }
grep -E "first step|epoch [0-9]+/[0-9]+ loss|Running stage|wrote|score|accuracy|s$" "$out/e2e.log" | cut -c1-200 | tail -40
