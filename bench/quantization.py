"""Which int8 quantisation the torch backend uses on CPU: torch's `quantize_dynamic` or torchao.

    pip install torchao          # not a Dragoman dependency; only this comparison needs it
    python -m bench.quantization [--cache DIR]

Times greedy generation of exactly 32 tokens for 96 sentences at batch 32 on the real-size random
Marian that the benchmark builds (opus-mt-ROMANCE-en dimensions), in fp32, with
`torch.ao.quantization.quantize_dynamic` (what `quantize = "dynamic-int8"` does), and with
torchao's `Int8DynamicActivationInt8WeightConfig` and `Int8WeightOnlyConfig`, and counts how many
outputs torchao's dynamic int8 shares exactly with quantize_dynamic's.
"""

import argparse
import copy
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.run import build_marian, sentences

BATCH, N, NEW_TOKENS = 32, 96, 32


def _timed(model, tokenizer, texts) -> tuple[float, list]:
    import torch

    outputs = []
    with torch.inference_mode():
        first = tokenizer(texts[:BATCH], return_tensors="pt", padding=True)
        model.generate(**first, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)  # warm-up
        started = time.perf_counter()
        for i in range(0, len(texts), BATCH):
            batch = tokenizer(texts[i : i + BATCH], return_tensors="pt", padding=True)
            out = model.generate(**batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
            outputs.extend(out.tolist())
    return len(texts) / (time.perf_counter() - started), outputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quantization")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "dragoman-bench"))
    args = parser.parse_args(argv)
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    path = build_marian(Path(args.cache) / "marian-romance-size")
    tokenizer = AutoTokenizer.from_pretrained(path)
    fp32 = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    texts = sentences(N)
    rows = {"fp32": _timed(fp32, tokenizer, texts)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in torch 2.13, in favour of torchao
        dynamic = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8
        )
    rows["torch quantize_dynamic int8"] = _timed(dynamic, tokenizer, texts)
    try:
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )
    except ImportError:
        print("torchao is not installed: pip install torchao", file=sys.stderr)
    else:
        for name, config in (
            (
                "torchao int8 dynamic activation + int8 weight",
                Int8DynamicActivationInt8WeightConfig,
            ),
            ("torchao int8 weight-only", Int8WeightOnlyConfig),
        ):
            model = copy.deepcopy(fp32)
            quantize_(model, config())
            rows[name] = _timed(model, tokenizer, texts)
    base = rows["fp32"][0]
    print(f"{'variant':48} {'sentences/s':>12} {'vs fp32':>8}")
    for name, (rate, _) in rows.items():
        print(f"{name:48} {rate:12.1f} {rate / base:7.2f}x")
    torchao = rows.get("torchao int8 dynamic activation + int8 weight")
    if torchao:
        reference = rows["torch quantize_dynamic int8"][1]
        same = sum(a == b for a, b in zip(torchao[1], reference, strict=True))
        print(f"torchao dynamic int8 outputs equal to quantize_dynamic's: {same}/{N}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
