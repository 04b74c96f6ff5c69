#!/usr/bin/env bash
# Overhead of LODECallback on a GPU (JAX and torch; TensorFlow is not installed on the
# lent H200 machine). Runs benchmarks/overhead.py at two sizes, each backend in its own
# invocation under its own time limit, so a slow one still leaves the others' JSON behind:
#   full:  60k images (58k train + 2k validation pool), P=10, 4 epochs: the paper's
#          Fashion-MNIST geometry (~45 steps per log point), replanning once per epoch
#          (the callback's default, replan_every=P); overhead.py also reports the ratio
#          after the first epoch, without the one-time costs (compiling the validation
#          predict, the first planning call) that weigh on such short GPU fits
#   small: the CPU benchmark's config (12k images, 2 epochs, P=2, replanning every point);
#          on a GPU these fits last about a second, so fixed costs dominate
# Usage: bash benchmarks/gpu_overhead.sh OUTDIR [full|small|all]   (default all; needs keras
# and a GPU build of jax/torch)
set -u
out=${1:?usage: gpu_overhead.sh OUTDIR [full|small|all]}
sizes=${2:-all}
mkdir -p "$out"
nvidia-smi -L
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.get_device_name(0))"
run() {  # run LIMIT NAME BACKEND ARGS...
  local limit=$1 name=$2 b=$3
  shift 3
  echo "== $name $b (limit ${limit}s): overhead.py --backends $b $*"
  timeout "$limit" python3 benchmarks/overhead.py --backends "$b" "$@" \
    --output "$out/overhead_gpu_${name}_$b.json"
}
full=(--pairs 3 --epochs 4 --window 5 --train 58000 --val 2000 --points-per-epoch 10 --replan-every 10)
if [ "$sizes" = full ] || [ "$sizes" = all ]; then
  run 110 full jax "${full[@]}"
  run 230 full torch "${full[@]}"
fi
if [ "$sizes" = small ] || [ "$sizes" = all ]; then
  run 90 small jax --pairs 3 --epochs 2 --window 2
  run 90 small torch --pairs 3 --epochs 2 --window 2
fi
