#!/usr/bin/env bash
# The teachers of results/adaptation.md: MiniLM-L6 as shipped and adapted, the same
# budget, one thread each, every seed; a run whose metrics exist is skipped, and a
# run stopped by --max-minutes continues where it stopped when called again.
#
#   project/scripts/adaptation_runs.sh CORPUS ADAPTED_ENCODER SEEDS [STEPS] [DEV_LIMIT] [MAX_MINUTES]
#   project/scripts/adaptation_runs.sh BC5CDR-chem training/adapted/minilm-pubmed 1,2 1500 1000
set -euo pipefail
corpus=$1 adapted=$2 seeds=$3 steps=${4:-1500} dev_limit=${5:-0} minutes=${6:-170}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "metrics/$corpus"
for seed in ${seeds//,/ }; do
  for arm in "teacher-minilm assets/all-MiniLM-L6-v2" "teacher-adapted $adapted"; do
    set -- $arm
    name=$1 encoder=$2 out="training/$corpus/$1-seed$seed"
    [ -f "metrics/$corpus/$name-seed$seed.json" ] && continue
    python -m spacy fastbioner train project/configs/teacher.cfg --output "$out" --max-minutes "$minutes" \
      --paths.train "corpus/$corpus/train.spacy" --paths.dev "corpus/$corpus/dev.spacy" \
      --vars.teacher_model "$encoder" --corpora.dev.limit "$dev_limit" --keep 2 --system.seed "$seed" \
      --training.optimizer.learn_rate.initial_rate 1e-4 --training.optimizer.learn_rate.total_steps "$steps" \
      --training.optimizer.learn_rate.warmup_steps $((steps / 10))
    python -m spacy evaluate "$out/model-best" "corpus/$corpus/test.spacy" \
      --output "metrics/$corpus/$name-seed$seed.json" --gold-preproc
  done
done
