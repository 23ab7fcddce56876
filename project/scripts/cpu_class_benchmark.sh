#!/usr/bin/env bash
# The speed table of one CPU class (issue 25): `export --runtime auto` of a student, every form
# exported beside it, one benchmark run at 1 and 2 threads on a test set, then `annotate` at
# 1 process x 1 thread, 2 x 1 and 1 x 2 for the form auto chose. Writes
# results/benchmarks/<cpu class>/{cpu.txt, export-auto.log, ncbi-test/, annotate/}.
#
# Usage: project/scripts/cpu_class_benchmark.sh TEACHER STUDENT WORK_DIR [CORPUS_DIR] [RAW_TEXT]
#   e.g. training/NCBI-disease/teacher/model-best training/NCBI-disease/student/model-best training/NCBI-disease
set -eux
T=$1; S=$2; W=$3; C=${4:-corpus/NCBI-disease}; RAW=${5:-assets/raw/unlabelled-abstracts.txt}
py=${PYTHON:-python}
cls=$($py -c "from spacy_fastbioner.runtime.cpu import cpu_class, read_cpu_flags; print(cpu_class(read_cpu_flags()))")
OUT=results/benchmarks/$cls
mkdir -p "$OUT"
{ grep -m1 'model name' /proc/cpuinfo || true; echo "cores: $(nproc)"; } > "$OUT/cpu.txt"
CAL="--calibration $C/train.spacy"
[ -d "$W/student-auto" ] || $py -m spacy fastbioner export "$S" "$W/student-auto" $CAL --dev "$C/dev.spacy" 2>&1 | tee "$OUT/export-auto.log"
[ -d "$W/student-onnx-static-packed" ] || $py -m spacy fastbioner export "$S" "$W/student-onnx-static-packed" --runtime onnx --int8 --int8-scheme static --packed $CAL
[ -d "$W/student-onnx-dynamic" ] || $py -m spacy fastbioner export "$S" "$W/student-onnx-dynamic" --runtime onnx --int8 --max-batch-items 512
[ -d "$W/student-onnx-fp32" ] || $py -m spacy fastbioner export "$S" "$W/student-onnx-fp32" --runtime onnx --fp32 --max-batch-items 512
[ -d "$W/student-openvino-int8" ] || $py -m spacy fastbioner export "$S" "$W/student-openvino-int8" --runtime openvino --int8 --packed $CAL
[ -d "$W/student-int8" ] || $py -m spacy fastbioner quantize "$S" "$W/student-int8" --max-batch-items 512
$py -m spacy fastbioner benchmark teacher="$T" student="$S" student-int8="$W/student-int8" onnx-fp32="$W/student-onnx-fp32" \
  onnx-dynamic-int8="$W/student-onnx-dynamic" onnx-static-int8-packed="$W/student-onnx-static-packed" \
  openvino-static-int8-packed="$W/student-openvino-int8" auto="$W/student-auto" \
  --data "$C/test.spacy" --output "$OUT/ncbi-test" --threads 1,2 --n-batches 10 --n-latency 0 --no-memory
$py -m spacy fastbioner annotate-benchmark auto="$W/student-auto" --data "$RAW" --output "$OUT/annotate" \
  --n-docs 1000 --settings 1x1,2x1,1x2
